"""``python -m romp_fast.evaluate`` with --gt/--pred: the table, JSON and CSV, options, errors."""
import json

import pytest

from romp_fast import evaluate as E


def _mot(path, rows):
    path.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))


def _tracking_folders(tmp_path, swap_at=None):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    for seq in ("seqA", "seqB"):
        g, p = [], []
        for f in range(1, 7):
            for i, x in ((1, 10), (2, 200)):
                g.append((f, i, x + 3 * f, 50, 40, 80, 1, 1, 1.0))
                tid = (3 - i) if swap_at is not None and f >= swap_at else i
                p.append((f, tid, x + 3 * f, 50, 40, 80, 1.0, -1, -1, -1))
        _mot(gt / f"{seq}.txt", g)
        _mot(pred / f"{seq}.txt", p)
    return gt, pred


def test_tracking_perfect_and_files(tmp_path, capsys):
    gt, pred = _tracking_folders(tmp_path)
    out = tmp_path / "out"
    assert E.main(["--benchmark", "tracking", "--gt", str(gt), "--pred", str(pred), "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "== tracking ==" in text and "HOTA" in text and "COMBINED" in text
    res = json.loads((out / "tracking.json").read_text())
    for k in ("HOTA", "MOTA", "IDF1"):
        assert res["summary"][k] == pytest.approx(1.0)
    assert res["summary"]["IDSW"] == 0
    csv_rows = (out / "per_sequence.csv").read_text().splitlines()
    assert csv_rows[0].startswith("sequence") and len(csv_rows) == 1 + 3  # 2 sequences + COMBINED


def test_tracking_id_swap_counts_and_option(tmp_path, capsys):
    gt, pred = _tracking_folders(tmp_path, swap_at=4)
    out = tmp_path / "out"
    assert E.main(["--benchmark", "tracking", "--gt", str(gt), "--pred", str(pred), "--output-dir", str(out),
                   "--option", "threshold=0.5"]) == 0
    s = json.loads((out / "tracking.json").read_text())["summary"]
    # per sequence: 2 id switches at frame 4; MOTA = 1 - IDSW / GT = 1 - 2 / 12
    assert s["IDSW"] == 4 and s["MOTA"] == pytest.approx(1 - 4 / 24)
    assert s["IDF1"] < 1 and s["HOTA"] < 1 and s["DetA"] == pytest.approx(1.0)


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert E.main(["--benchmark", "tracking", "--gt", str(tmp_path / "none"), "--pred", str(tmp_path)]) == 2
    assert "none: ground-truth folder not found" in capsys.readouterr().err
    gt, pred = _tracking_folders(tmp_path)
    assert E.main(["--benchmark", "tracking", "--gt", str(gt), "--pred", str(pred), "--option", "nonsense=1"]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert E.main(["--benchmark", "3dpw", "--gt", str(gt)]) == 2
    assert "give --benchmark NAME --gt PATH --pred PATH" in capsys.readouterr().err
    assert E.main(["--checkpoint", "x.pt", "--benchmark", "agora", "--data", "d"]) == 2
    assert "write the model's predictions" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        E.main(["--benchmark", "nope"])

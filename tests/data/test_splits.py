"""validation_overlap: which formats and settings test on the validation videos (annotation files only)."""
import json

import pytest

from pks4_lit.data.annotations import DatasetError
from pks4_lit.data.splits import overlap_words, validation_overlap


def _ssv2(root, test_labelled=True):
    root.mkdir()
    (root / "labels.json").write_text(json.dumps({"Moving something": "0", "Holding something": "1"}))
    for split, n in (("train", 4), ("validation", 3), ("test", 2)):
        entries = [{"id": f"{split}{k}", "template": ["Moving [something]", "Holding [something]"][k % 2]}
                   for k in range(n)]
        if split == "test" and not test_labelled:
            entries = [{"id": e["id"]} for e in entries]           # the official test.json: ids only
        (root / f"{split}.json").write_text(json.dumps(entries))
    return root


def test_ssv2_overlap_follows_the_datamodules_test_split(tmp_path):
    root = _ssv2(tmp_path / "ssv2")
    assert validation_overlap(root, "ssv2", test_split="validation") == (3, 3)
    assert validation_overlap(root, "ssv2") == (0, 2)                       # a labelled test.json
    unlabelled = _ssv2(tmp_path / "official", test_labelled=False)
    assert validation_overlap(unlabelled, "ssv2") == (3, 3)                 # null falls back to validation


def test_kinetics_without_test_csv_tests_on_validation(tmp_path):
    header = "label,youtube_id,time_start,time_end,split\n"
    (tmp_path / "train.csv").write_text(header + "a,t1,0,10,train\nb,t2,0,10,train\n")
    (tmp_path / "validate.csv").write_text(header + "a,v1,0,10,val\nb,v2,0,10,val\n")
    assert validation_overlap(tmp_path, "kinetics") == (2, 2)
    assert validation_overlap(tmp_path, "kinetics", test_split="validation") == (2, 2)
    (tmp_path / "test.csv").write_text(header + "a,x1,0,10,test\n")
    assert validation_overlap(tmp_path, "kinetics") == (0, 1)
    with pytest.raises(DatasetError):
        validation_overlap(tmp_path / "absent", "kinetics")


def test_ucf101_and_hmdb51_validate_on_their_test_list(tmp_path):
    ucf = tmp_path / "ucf"
    ucf.mkdir()
    (ucf / "classInd.txt").write_text("1 Jump\n2 Run\n")
    (ucf / "trainlist01.txt").write_text("Jump/v_a.avi 1\nRun/v_b.avi 2\n")
    (ucf / "testlist01.txt").write_text("Jump/v_c.avi\nRun/v_d.avi\nRun/v_e.avi\n")
    assert validation_overlap(ucf, "ucf101") == (3, 3)
    hmdb = tmp_path / "hmdb"
    hmdb.mkdir()
    for name in ("jump", "run"):
        (hmdb / f"{name}_test_split1.txt").write_text(f"{name}1.avi 1\n{name}2.avi 2\n{name}3.avi 0\n")
    assert validation_overlap(hmdb, "hmdb51") == (2, 2)


def test_overlap_words():
    assert overlap_words(3, 3) == "the test split is the validation split (3 videos)"
    assert overlap_words(1, 4) == "1 of 4 test videos are validation videos"

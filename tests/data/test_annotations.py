"""Each reader on a tiny copy of its real on-disk layout (annotation files only)."""
import json

import pytest

from pks4_lit.data.annotations import DatasetError, read_class_names, read_samples


def _ssv2(root, test_has_templates=True):
    (root / "labels.json").write_text(json.dumps({"Pushing something left": "1", "Holding something": "0"}))
    entry = lambda i, t: {"id": str(i), "label": t.replace("[something]", "a cup"), "template": t, "placeholders": ["a cup"]}
    (root / "train.json").write_text(json.dumps([entry(1, "Holding [something]"), entry(2, "Pushing [something] left")]))
    (root / "validation.json").write_text(json.dumps([entry(3, "Pushing [something] left")]))
    test = [entry(4, "Holding [something]")] if test_has_templates else [{"id": "4"}]
    (root / "test.json").write_text(json.dumps(test))


def test_ssv2(tmp_path):
    _ssv2(tmp_path)
    names = read_class_names(tmp_path, "ssv2")
    assert names == ["Holding something", "Pushing something left"]
    train = read_samples(tmp_path, "ssv2", "train", names)
    assert [(s.path.name, s.label, s.id) for s in train] == [("1.webm", 0, "1"), ("2.webm", 1, "2")]
    assert [s.id for s in read_samples(tmp_path, "ssv2", "val", names)] == ["3"]
    assert [s.id for s in read_samples(tmp_path, "ssv2", "test", names)] == ["4"]


def test_ssv2_unlabelled_test_falls_back_to_validation(tmp_path, caplog):
    _ssv2(tmp_path, test_has_templates=False)
    names = read_class_names(tmp_path, "ssv2")
    assert [s.id for s in read_samples(tmp_path, "ssv2", "test", names)] == ["3"]
    assert "validation" in caplog.text
    assert [s.id for s in read_samples(tmp_path, "ssv2", "test", names, test_split="train")] == ["1", "2"]


def test_ssv2_unknown_template_names_file_and_entry(tmp_path):
    _ssv2(tmp_path)
    (tmp_path / "validation.json").write_text(json.dumps([{"id": "77", "template": "Dropping [something]"}]))
    with pytest.raises(DatasetError, match=r"validation\.json.*id 77.*Dropping something"):
        read_samples(tmp_path, "ssv2", "val", read_class_names(tmp_path, "ssv2"))


def test_kinetics_nested_and_flat(tmp_path):
    header = "label,youtube_id,time_start,time_end,split\n"
    (tmp_path / "train.csv").write_text(header + "riding a bike,abc,10,20,train\nabseiling,xyz,0,10,train\n")
    (tmp_path / "validate.csv").write_text(header + "abseiling,vvv,5,15,val\n")
    nested = tmp_path / "train" / "riding a bike" / "abc_000010_000020.mp4"
    nested.parent.mkdir(parents=True)
    nested.write_bytes(b"x")
    flat = tmp_path / "train" / "xyz_000000_000010.mp4"
    flat.write_bytes(b"x")
    names = read_class_names(tmp_path, "kinetics")
    assert names == ["abseiling", "riding a bike"]
    train = read_samples(tmp_path, "kinetics", "train", names)
    assert [(s.path, s.label) for s in train] == [(nested, 1), (flat, 0)]
    val = read_samples(tmp_path, "kinetics", "val", names)
    assert val[0].path == tmp_path / "val" / "abseiling" / "vvv_000005_000015.mp4" and val[0].label == 0
    assert read_samples(tmp_path, "kinetics", "test", names)[0].id == "vvv_000005_000015"  # no test.csv: val


def test_kinetics_unknown_label(tmp_path):
    header = "label,youtube_id,time_start,time_end,split\n"
    (tmp_path / "train.csv").write_text(header + "abseiling,xyz,0,10,train\n")
    (tmp_path / "val.csv").write_text(header + "abseiling,a,0,10,val\nskydiving,b,0,10,val\n")
    with pytest.raises(DatasetError, match=r"val\.csv line 3.*skydiving"):
        read_samples(tmp_path, "kinetics", "val", read_class_names(tmp_path, "kinetics"))


def test_ucf101_splits(tmp_path):
    d = tmp_path / "ucfTrainTestlist"
    d.mkdir()
    (d / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (d / "trainlist02.txt").write_text("Archery/v_Archery_g08_c01.avi 2\nApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n")
    (d / "testlist02.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    names = read_class_names(tmp_path, "ucf101")
    assert names == ["ApplyEyeMakeup", "Archery"]
    train = read_samples(tmp_path, "ucf101", "train", names, split=2)
    assert [(s.id, s.label) for s in train] == [("Archery/v_Archery_g08_c01.avi", 1), ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0)]
    assert read_samples(tmp_path, "ucf101", "test", names, split=2)[0].path == tmp_path / "Archery/v_Archery_g01_c01.avi"
    with pytest.raises(DatasetError, match="trainlist01"):
        read_samples(tmp_path, "ucf101", "train", names, split=1)


def test_hmdb51_marks(tmp_path):
    d = tmp_path / "testTrainMulti_7030_splits"
    d.mkdir()
    (d / "wave_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    (d / "clap_test_split1.txt").write_text("d.avi 2\ne.avi 1\n")
    names = read_class_names(tmp_path, "hmdb51")
    assert names == ["clap", "wave"]
    assert {(s.id, s.label) for s in read_samples(tmp_path, "hmdb51", "train", names)} == {("wave/a.avi", 1), ("clap/e.avi", 0)}
    test = read_samples(tmp_path, "hmdb51", "test", names)
    assert {s.id for s in test} == {"wave/b.avi", "clap/d.avi"} and test[0].path.parent.name in names
    (d / "clap_test_split1.txt").write_text("d.avi 3\n")
    with pytest.raises(DatasetError, match=r"clap_test_split1\.txt line 1"):
        read_samples(tmp_path, "hmdb51", "train", names)


def test_csv_names_and_indices(tmp_path):
    (tmp_path / "train.csv").write_text("path,label\nv/a.mp4,dog\nv/b.mp4,cat\n")
    (tmp_path / "val.csv").write_text("v/c.mp4,1\nv/d.mp4,cat\n")
    names = read_class_names(tmp_path, "csv")
    assert names == ["cat", "dog"]
    assert [s.label for s in read_samples(tmp_path, "csv", "val", names)] == [1, 0]
    (tmp_path / "test.csv").write_text("v/e.mp4,horse\n")
    with pytest.raises(DatasetError, match=r"test\.csv line 1.*horse"):
        read_samples(tmp_path, "csv", "test", names)


def test_missing_files_and_empty_splits(tmp_path):
    with pytest.raises(DatasetError, match="labels.json"):
        read_class_names(tmp_path, "ssv2")
    with pytest.raises(DatasetError, match="does not exist"):
        read_class_names(tmp_path / "nope", "csv")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        read_class_names(tmp_path, "imagenet")
    (tmp_path / "train.csv").write_text("a.mp4,0\n")
    (tmp_path / "val.csv").write_text("path,label\n")
    with pytest.raises(DatasetError, match=r"val\.csv.*empty"):
        read_samples(tmp_path, "csv", "val", read_class_names(tmp_path, "csv"))

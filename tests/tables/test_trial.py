"""One table trial end to end at tiny scale: store, fit, selection on validation, per-clip test predictions."""
import json

import pytest

from pks4_lit.tables import outputs, plan, pool, sets, trial

TINY = ("--data.num_workers 0 --data.crop_size 64 --data.short_side 64 --data.num_frames 4 --data.batch_size 4 "
        "--trainer.log_every_n_steps 1")


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(sets, "SETS", {"kinematic": sets.SynthSet("kinematic", (3, 2, 2), 8)})
    monkeypatch.setattr(sets, "MIN_TEST_CLIPS", 16)
    args = type("A", (), dict(data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"),
                              runs_dir=str(tmp_path / "runs"), config_dir="conf/synthetic", epochs=3, views=1,
                              seeds=1, jobs=0, extra=TINY, force=False))()
    return args


@pytest.mark.slow
def test_trial_selects_on_validation_and_reads_test_only_after(tiny, monkeypatch):
    from pks4_lit.cache.store import SplitReader

    prep = plan.prepare(tiny, "kinematic", [0])
    assert prep["set"]["videos"] == 8 * 7
    read, selected = [], []
    row = SplitReader.row

    def spy(self, *a, **k):
        read.append((self.split, bool(selected)))
        return row(self, *a, **k)

    predict = trial.predict_test

    def predict_spy(module, dm):
        selected.append(True)                 # from here on the selection is fixed
        return predict(module, dm)

    monkeypatch.setattr(SplitReader, "row", spy)
    monkeypatch.setattr(trial, "predict_test", predict_spy)
    t = plan.trial(tiny, "kinematic", "pks4", "pks4", {}, 0.004, 0)
    res = trial.run_trial(t)
    assert {s for s, after in read if not after} == {"train", "val"}            # fit never touched test
    assert any(s == "test" for s, after in read if after)
    assert res["best_epoch"] == max(range(3), key=lambda e: (res["val_top1"][e], -e))
    assert res["best_ckpt_epoch"] == res["best_epoch"] and len(res["val_top1"]) == 3
    test = res["test"]
    assert len(test["ids"]) == 16 and test["ids"] == sorted(test["ids"], key=lambda i: (len(i), i))
    labels = {e["id"]: e for e in json.loads((outputs.repo_path(tiny.data_dir) / "kinematic" / "test.json").read_text())}
    assert set(test["ids"]) == set(labels)
    assert res["test_top1"] == pytest.approx(sum(p == y for p, y in zip(test["preds"], test["labels"])) / 16)
    # same command: reused, not retrained; the pool returns it in order
    again = pool.run_trials([t], jobs=0)
    assert again[0]["reused"] and again[0]["test"] == test


def test_commands_carry_no_machine_paths():
    args = type("A", (), dict(data_dir="data/tables", cache_dir="cache/tables", runs_dir="runs/tables",
                              config_dir="conf/synthetic", epochs=8, views=2, seeds=5, jobs=2, extra="", force=False))()
    t = plan.trial(args, "kinematic", "pks4-radius=2", "pks4", {"radius": 2}, 0.004, 3)
    cmd = t.command
    assert str(outputs.REPO) not in cmd and " /" not in cmd
    assert cmd.startswith("pks4 fit --config conf/synthetic/pks4.yaml --data.root data/tables/kinematic "
                          "--data.features cache/tables/kinematic/seed3 --seed_everything 3 --data.seed 3")
    assert "--model.net.head.radius 2 --model.lr 0.004 --trainer.max_epochs 8 --data.num_workers 0" in cmd
    assert t.name == "kinematic/pks4-radius=2/lr0.004/seed3"
    store = sets.cache_command("conf/synthetic/pks4.yaml", "data/tables/kinematic", 3, 2, "cache/tables/kinematic/seed3")
    assert " /" not in " ".join(store) and store[store.index("--data.seed") + 1] == "3"


def test_end_to_end_rows_train_from_pixels_with_their_own_config():
    from pks4_lit.tables import table_e2e

    args = type("A", (), dict(data_dir="data/tables", cache_dir="cache/tables", runs_dir="runs/tables",
                              config_dir="conf/synthetic", epochs=8, views=2, seeds=5, jobs=2, extra="", force=False))()
    st = table_e2e.e2e_trial(args, "temporal", "st_adapter", 0.004, 2)
    vm = table_e2e.e2e_trial(args, "temporal", "videomamba", 0.003, 2)
    assert st.features is None and "--data.features" not in st.command and "--model.net.adapter" not in st.command
    assert st.command.startswith("pks4 fit --config conf/synthetic/st_adapter.yaml --data.root data/tables/temporal ")
    assert "--model.lr 0.004 --trainer.max_epochs 8" in st.command and st.name == "temporal/st_adapter/lr0.004/seed2"
    assert vm.command.startswith("pks4 fit --config conf/synthetic/videomamba.yaml --data.root data/tables/temporal "
                                 "--seed_everything 2 --data.seed 2")
    assert vm.name == "temporal/videomamba/lr0.003/seed2"

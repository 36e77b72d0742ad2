"""The metric registry (orze.metrics), the task's classes (orze.task), and the multi-class forms of
the losses and the sampler against the verifier's plain-Python references."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from orze.config import ConfigError, ProjectConfig, TaskConfig, load_project
from orze.layout import Layout
from orze.metrics import REGISTRY, canonical, compute_all, names, registry_table, resolve
from orze.task import TaskError, classes_from_labels
from orze.verification import reference as ref
from orze.verification.metric import MetricSpec
from orze.vocab import TaskType
from orze.worker.knobs import EpochSampler
from orze.worker.losses import build_loss
from orze.worker.probes import loss_probe

RNG = np.random.default_rng(0)
Y_BIN = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 0])
P_BIN = np.array([0.1, 0.8, 0.4, 0.35, 0.9, 0.2, 0.6, 0.7, 0.05, 0.3])
Y_MC = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 2])
P_MC = RNG.dirichlet(np.ones(3), size=10)


def test_registry_has_the_issue_metrics_with_directions_and_task_types():
    assert names() == ["ap", "roc_auc", "accuracy", "balanced_accuracy", "macro_f1", "macro_ap", "log_loss"]
    assert [n for n in names() if REGISTRY[n].direction == "min"] == ["log_loss"]
    assert "ap" not in names(TaskType.MULTICLASS) and "ap" in names(TaskType.BINARY)
    assert math.isinf(REGISTRY["log_loss"].high)


def test_values_are_sklearns():
    b = compute_all(Y_BIN, P_BIN, TaskType.BINARY, 2, prefix="val_")
    assert b["val_ap"] == pytest.approx(skm.average_precision_score(Y_BIN, P_BIN))
    assert b["val_roc_auc"] == pytest.approx(skm.roc_auc_score(Y_BIN, P_BIN))
    assert b["val_accuracy"] == pytest.approx(skm.accuracy_score(Y_BIN, P_BIN >= 0.5))
    assert b["val_log_loss"] == pytest.approx(skm.log_loss(Y_BIN, P_BIN))
    m = compute_all(Y_MC, P_MC, TaskType.MULTICLASS, 3, prefix="")
    pred = P_MC.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(Y_MC, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(Y_MC, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(Y_MC, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(Y_MC, P_MC, multi_class="ovr"))
    assert m["macro_ap"] == pytest.approx(np.mean([skm.average_precision_score(Y_MC == c, P_MC[:, c])
                                                   for c in range(3)]))
    assert m["log_loss"] == pytest.approx(skm.log_loss(Y_MC, P_MC))
    assert "ap" not in m


def test_undefined_on_one_class_is_nan_never_a_crash():
    assert math.isnan(resolve("ap").compute(np.zeros(4), np.full(4, 0.3), 2))
    assert math.isnan(resolve("roc_auc").compute(np.ones(4), np.full((4, 3), 1 / 3), 3))


def test_names_aliases_and_errors():
    assert canonical("val_ap") == "ap" and canonical("val_auc") == "roc_auc" and canonical("accuracy") == "accuracy"
    assert resolve("val_log_loss").history_key == "val_log_loss" and resolve("val_log_loss").test_key == "test_log_loss"
    with pytest.raises(ValueError, match="allowed: ap, roc_auc, accuracy"):
        resolve("f1")
    with pytest.raises(ValueError, match="does not apply to a multiclass task; allowed for multiclass: roc_auc"):
        resolve("ap", TaskType.MULTICLASS)


def test_metric_spec_comes_from_the_registry():
    s = MetricSpec.of(resolve("log_loss"))
    assert (s.name, s.history_key, s.low, s.high, s.direction) == ("val_log_loss", "val_log_loss", 0.0, math.inf, "min")
    assert MetricSpec.of(resolve("ap")) == MetricSpec()   # the old default is the registry's ap


def test_task_config_accepts_old_names_and_refuses_others(tmp_path):
    assert TaskConfig(metric="val_ap").metric == "ap" and TaskConfig(metric="val_auc").metric == "roc_auc"
    assert TaskConfig(type="multiclass", metric="accuracy").spec is REGISTRY["accuracy"]
    layout = Layout.at(tmp_path)
    layout.project_config.parent.mkdir(parents=True)
    layout.project_config.write_text("task: {type: multiclass, metric: ap}\n")
    with pytest.raises(ConfigError, match=r"orze.yaml: task: metric 'ap' does not apply to a multiclass task"):
        load_project(layout)
    layout.project_config.write_text("task: {type: ternary}\n")
    with pytest.raises(ConfigError, match=r"task.type: .*'binary' or 'multiclass'"):
        load_project(layout)
    assert ProjectConfig().worker.keep_weights == "best"


def test_docs_registry_table_is_the_registry():
    text = (Path(__file__).resolve().parent.parent / "docs" / "tasks.md").read_text()
    assert registry_table() in text


# --- classes from the labels ----------------------------------------------------------------

def test_classes_binary_and_multiclass():
    c = classes_from_labels({"train": [0, 1, 1], "val": [0, 1], "test": [1]}, TaskType.BINARY, "clips.csv")
    assert (c.count, c.outputs, c.per_split["train"]) == (2, 1, [1, 2])
    m = classes_from_labels({"train": [0, 1, 2, 2], "val": [2], "test": [0]}, TaskType.MULTICLASS, "clips.csv")
    assert (m.count, m.outputs, m.priors()) == (3, 3, [0.25, 0.25, 0.5])


@pytest.mark.parametrize("labels, task, message", [
    ({"train": [0, 1, 2]}, TaskType.BINARY, "task.type is binary but labels include [2]"),
    ({"train": [0, 1, 3]}, TaskType.MULTICLASS, "class(es) [2] of 0..3 have no clip"),
    ({"train": [1, 1], "val": [0]}, TaskType.MULTICLASS, "at least 2 classes in the train split; it has 1"),
    ({"train": [-1, 0]}, TaskType.MULTICLASS, "labels must be class indices 0..K-1"),
])
def test_classes_refused_with_the_reason(labels, task, message):
    with pytest.raises(TaskError, match="features/clips.csv: ") as e:
        classes_from_labels(labels, task, "features/clips.csv")
    assert message in str(e.value)


# --- the multi-class knobs against the verifier's references ------------------------------------

@pytest.mark.parametrize("config", [{"loss": "bce"}, {"loss": "label_smoothing", "label_smoothing": 0.2},
                                    {"loss": "focal", "focal_gamma": 1.5, "focal_alpha": 0.4}])
@pytest.mark.parametrize("k", [3, 10])
def test_multiclass_losses_match_their_references(config, k):
    got = loss_probe(build_loss(config), k)
    want = ref.loss_reference(config, k)
    assert got["value"] == pytest.approx(want["value"], rel=1e-4)
    assert np.allclose(got["grad"], want["grad"], atol=1e-5)


def test_multiclass_bce_is_cross_entropy_and_smoothing_reaches_uniform():
    z = torch.tensor([[2.0, 0.0, -1.0]])
    t = torch.tensor([[0.0, 1.0, 0.0]])
    assert float(build_loss({"loss": "bce"})(z, t)) == pytest.approx(float(torch.nn.functional.cross_entropy(z, t)))
    full = build_loss({"loss": "label_smoothing", "label_smoothing": 1.0})(z, t)
    assert float(full) == pytest.approx(float(torch.nn.functional.cross_entropy(z, torch.full((1, 3), 1 / 3))))


def test_per_class_oversampling_draws_the_reference_shares():
    labels = torch.tensor([0] * 600 + [1] * 300 + [2] * 60, dtype=torch.float32)
    s = EpochSampler(len(labels), labels, 128, 3.0, torch.Generator().manual_seed(0), classes=3)
    drawn = torch.cat([torch.cat(s.batches()) for _ in range(20)])
    share = torch.bincount(labels[drawn].long(), minlength=3).double() / len(drawn)
    want = ref.expected_class_fractions([600, 300, 60], 3.0)
    assert want == pytest.approx([600 / 1380, 600 / 1380, 180 / 1380])   # class 1 capped at balance (2x), 2 at r (3x)
    assert np.allclose(share.numpy(), want, atol=0.01)
    plain = EpochSampler(len(labels), labels, 128, 1.0, torch.Generator().manual_seed(0), classes=3)
    assert sorted(torch.cat(plain.batches()).tolist()) == list(range(len(labels)))

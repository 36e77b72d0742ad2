"""ANOVA decompositions: known eta^2 is recovered and scipy/statsmodels agree."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from orze.analysis import AnalysisError
from orze.analysis.variance import architecture_anova, balanced_eta2, decompose, one_way, two_way, within


def _groups_with_exact_eta2(eta2: float, k: int = 4, size: int = 30, seed: int = 0):
    """Values whose one-way eta^2 over k groups is exactly `eta2` (within-group noise rescaled)."""
    rng = np.random.default_rng(seed)
    means = np.linspace(-1, 1, k)
    ss_between = size * np.sum((means - means.mean()) ** 2)
    ss_within_target = ss_between * (1 - eta2) / eta2
    noise = [rng.normal(size=size) for _ in range(k)]
    noise = [z - z.mean() for z in noise]
    scale = np.sqrt(ss_within_target / sum(np.sum(z ** 2) for z in noise))
    values = np.concatenate([m + scale * z for m, z in zip(means, noise)])
    groups = np.repeat([f"g{i}" for i in range(k)], size)
    return values, groups


@pytest.mark.parametrize("eta2", [0.2, 0.6, 0.94])
def test_known_eta2_is_recovered(eta2):
    y, g = _groups_with_exact_eta2(eta2)
    assert one_way(y, g)["eta2"] == pytest.approx(eta2, abs=1e-9)


def test_one_way_agrees_with_scipy():
    rng = np.random.default_rng(1)
    g = rng.choice(list("abcde"), 300)
    y = rng.normal(size=300) + (g == "a") * 0.5 + (g == "c") * 0.2
    mine = one_way(y, g)
    ref = stats.f_oneway(*[y[g == v] for v in sorted(set(g))])
    assert mine["F"] == pytest.approx(ref.statistic, rel=1e-9)
    assert mine["p"] == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)


def _frame(seed=0, n_per=20, interaction=0.0):
    rng = np.random.default_rng(seed)
    rows = []
    for b, eb in (("vjepa2", 0.2), ("dinov3_b", -0.1), ("siglip2", 0.0)):
        for e, ee in (("zipformer", 0.05), ("retnet", 0.0)):
            for _ in range(n_per):
                inter = interaction if (b, e) == ("vjepa2", "zipformer") else 0.0
                rows.append({"backbone": b, "temporal_encoder": e, "metric": 0.6 + eb + ee + inter + rng.normal(0, 0.03)})
    return pd.DataFrame(rows)


def test_two_way_shares_match_hand_computed_balanced_sums_of_squares():
    df = _frame(interaction=0.05)
    out = two_way(df)
    y = df["metric"].to_numpy()
    grand = y.mean()
    ss_total = np.sum((y - grand) ** 2)
    ss_a = df.groupby("backbone")["metric"].agg(lambda s: len(s) * (s.mean() - grand) ** 2).sum()
    ss_b = df.groupby("temporal_encoder")["metric"].agg(lambda s: len(s) * (s.mean() - grand) ** 2).sum()
    cell = df.groupby(["backbone", "temporal_encoder"])["metric"].agg(lambda s: len(s) * (s.mean() - grand) ** 2).sum()
    ss_ab = cell - ss_a - ss_b
    assert out["terms"]["backbone"]["share"] == pytest.approx(ss_a / ss_total, rel=1e-6)
    assert out["terms"]["temporal_encoder"]["share"] == pytest.approx(ss_b / ss_total, rel=1e-6)
    assert out["terms"]["backbone:temporal_encoder"]["share"] == pytest.approx(ss_ab / ss_total, rel=1e-6)
    total = sum(t["share"] for t in out["terms"].values())
    assert total == pytest.approx(1.0, abs=1e-6)  # balanced: the shares add up
    assert out["terms"]["backbone:temporal_encoder"]["p"] < 0.01


def test_two_way_agrees_with_statsmodels_on_an_unbalanced_full_design():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    df = _frame(interaction=0.03, seed=5)
    df = pd.concat([df, df[df.backbone == "vjepa2"].iloc[:13]])  # unbalanced, every cell present
    ref = anova_lm(smf.ols("metric ~ C(backbone) * C(temporal_encoder)", data=df).fit(), typ=1)
    out = two_way(df)
    total = ref["sum_sq"].sum()
    for term, key in (("C(backbone)", "backbone"), ("C(temporal_encoder)", "temporal_encoder"),
                      ("C(backbone):C(temporal_encoder)", "backbone:temporal_encoder"), ("Residual", "residual")):
        assert out["terms"][key]["share"] == pytest.approx(ref.loc[term, "sum_sq"] / total, rel=1e-6)
        assert out["terms"][key]["df"] == ref.loc[term, "df"]
        if key != "residual":
            assert out["terms"][key]["F"] == pytest.approx(ref.loc[term, "F"], rel=1e-6)
            assert out["terms"][key]["p"] == pytest.approx(ref.loc[term, "PR(>F)"], rel=1e-5, abs=1e-300)


def test_two_way_shares_stay_a_partition_when_unbalanced_with_an_empty_cell():
    df = _frame(n_per=15)
    df = df[~((df.backbone == "siglip2") & (df.temporal_encoder == "retnet"))]  # never run
    df = pd.concat([df, df[df.backbone == "vjepa2"]])  # over-sampled winner
    out = two_way(df)
    shares = [t["share"] for t in out["terms"].values()]
    assert all(0 <= s <= 1 for s in shares)
    assert sum(shares) == pytest.approx(1.0, abs=1e-9)
    # the first factor's share is its own one-way eta^2
    assert out["terms"]["backbone"]["share"] == pytest.approx(one_way(df.metric, df.backbone)["eta2"])


def test_groups_below_min_runs_are_excluded_and_balanced_equals_full_when_balanced():
    df = _frame(n_per=12)
    small = pd.DataFrame({"backbone": ["convnext"] * 5, "temporal_encoder": ["xlstm"] * 5, "metric": [0.0] * 5})
    out = architecture_anova(pd.concat([df, small]), min_runs=10)
    assert out["groups"] == 6 and out["excluded_runs"] == 5
    bal = balanced_eta2(df, min_runs=10, repeats=5)
    assert bal["per_group"] == 12
    assert bal["eta2_mean"] == pytest.approx(architecture_anova(df)["eta2"], rel=1e-9)


def test_encoder_share_within_one_backbone():
    df = _frame()
    res = within(df)
    sub = df[df.backbone == "vjepa2"]
    assert res["vjepa2"]["eta2"] == pytest.approx(one_way(sub.metric, sub.temporal_encoder)["eta2"])
    assert set(res) == {"vjepa2", "dinov3_b", "siglip2"}


def test_too_few_groups_is_a_clear_error_and_decompose_reports_it():
    df = _frame().query("backbone == 'vjepa2' and temporal_encoder == 'zipformer'")
    with pytest.raises(AnalysisError, match="need two or more"):
        architecture_anova(df)
    out = decompose(df)
    assert "error" in out["one_way"] and "error" in out["two_way"]

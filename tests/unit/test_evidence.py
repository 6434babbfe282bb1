"""tdsa.experiments.evidence: results files read back, paired differences and the claim per
lever."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
import yaml

from tdsa.config import Config, dump_config
from tdsa.errors import ConfigError, DataError
from tdsa.experiments.book import BOOK_GRIDS, claim_summary, lever_pairs
from tdsa.experiments.evidence import (
    BORDERLINE,
    CLAIM_PARTS,
    VERDICTS,
    check_lever,
    check_levers,
    column_stats,
    compare_in_words,
    fine_key,
    format_percent,
    format_ratio,
    format_verdicts,
    lever_table,
    paired,
    read_results,
    read_sweep,
    verdict,
    verdict_rule,
)
from tdsa.experiments.grid import RunResult, load_grid, write_results
from tdsa.experiments.grid import lever_pairs as ablate_lever_pairs

REPO = Path(__file__).resolve().parents[2]


def run(variant: str, seed: int, top1: float, high: float = 0.3, wrong: float = 0.1,
        chance: float = 0.05, gradcam: float = 0.1, status: str = "ok") -> dict:
    return {"variant": variant, "seed": float(seed), "status": status, "final_top1": top1,
            fine_key("high"): high, fine_key("wrong_high"): wrong,
            fine_key("chance_high"): chance, fine_key("gradcam"): gradcam}


def test_read_results_round_trips_the_ablate_csv(tmp_path: Path) -> None:
    grid_path = tmp_path / "g.yaml"
    grid_path.write_text(yaml.safe_dump({
        "base": str(REPO / "configs" / "synthetic_tdsa.yaml"), "seeds": [0, 1],
        "variants": {"ce": {"overrides": ["loss.alpha_mid=0"]}, "tdsa": {"overrides": []}}}))
    results = [RunResult("ce", 0, "ok", {"final_top1": 40.0, "best_top1": 41.5,
                                         fine_key("high"): 0.25}),
               RunResult("tdsa", 1, "failed", {}, "NonFiniteLossError: loss is nan")]
    csv_path, _ = write_results(load_grid(grid_path), results, tmp_path / "r" / "g", "cmd")
    rows = read_results(csv_path)
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("ce", 0.0, "ok"), ("tdsa", 1.0, "failed")]
    assert rows[0]["final_top1"] == 40.0 and rows[0][fine_key("high")] == 0.25
    assert math.isnan(rows[1]["final_top1"])
    assert rows[1]["error"] == "NonFiniteLossError: loss is nan"


def test_read_results_names_the_file_the_column_and_the_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such results file"):
        read_results(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("variant,seed,status,final_top1\nce,0,ok,40\n")
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) best_top1"):
        read_results(bad)
    bad.write_text("variant,seed,status,final_top1,best_top1\nce,0,ok,40,41\nce,1,ok,x,41\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 3: column 'final_top1' holds 'x'"):
        read_results(bad)


def test_paired_differences_use_only_common_finished_seeds() -> None:
    rows = [run("ce", 0, 50.0), run("ce", 1, 40.0), run("ce", 2, 60.0),
            run("tdsa", 0, 60.0), run("tdsa", 1, 51.0), run("tdsa", 2, 0.0, status="failed"),
            run("tdsa", 3, 99.0)]
    mean, std, n = paired(rows, ("tdsa", "final_top1"), ("ce", "final_top1"))
    assert n == 2 and mean == pytest.approx(10.5) and std == pytest.approx(math.sqrt(0.5))
    scaled = paired(rows, ("tdsa", fine_key("high")), ("tdsa", fine_key("wrong_high")), 100.0)
    assert scaled[0] == pytest.approx(20.0) and scaled[2] == 3
    assert paired(rows, ("tdsa", "final_top1"), ("nope", "final_top1"))[2] == 0
    mean, std, values = column_stats(rows, "ce", "final_top1")
    assert values == [50.0, 40.0, 60.0]
    assert (mean, std) == (pytest.approx(50.0), pytest.approx(statistics.stdev(values)))
    assert math.isnan(column_stats(rows, "ce", "missing")[0])


def test_verdict_needs_two_seeds_and_a_mean_beyond_its_spread() -> None:
    assert verdict(10.0, 1.0, 3) == "higher"
    assert verdict(-10.0, 1.0, 3) == "lower"
    assert verdict(0.5, 1.0, 3) == "no clear difference"
    assert verdict(10.0, math.nan, 1) == "no clear difference"
    assert verdict(10.0, 1.0, 1) == "no clear difference"
    assert verdict(0.0, 0.0, 5) == "no clear difference"


# (mean, std, seeds) -> the word, written by hand from the rule: |mean| > 1.25 std is higher /
# lower; 0.8 std <= |mean| <= 1.25 std ("about one std") is borderline; below, no difference.
VERDICT_REFERENCE = [
    ((-13.7, 6.4, 5), "lower"),            # README: TDSA - CE, 2.1 std
    ((16.8, 4.2, 5), "higher"),
    ((1.6, 8.2, 5), "no clear difference"),
    ((-3.9, 3.9, 5), "borderline lower"),  # issue 23: where true - control, mean = one std
    ((2.5, 2.4, 5), "borderline higher"),  # issue 23: pointing true - wrong, 1.04 std
    ((1.25, 1.0, 3), "borderline higher"),  # the band's edges belong to it
    ((-0.8, 1.0, 3), "borderline lower"),
    ((1.26, 1.0, 3), "higher"),
    ((-0.79, 1.0, 3), "no clear difference"),
    ((3.0, 1.0, 1), "no clear difference"),  # one seed: no spread, no verdict
]


@pytest.mark.parametrize(("diff", "word"), VERDICT_REFERENCE)
def test_verdict_against_a_hand_written_reference(diff: tuple[float, float, int],
                                                  word: str) -> None:
    assert verdict(*diff) == word
    assert word in VERDICTS


def test_verdict_rule_states_the_margins_of_the_verdict() -> None:
    assert verdict_rule() == ("`higher` or `lower` when the size of the paired mean exceeds 1.25 "
                              "standard deviations over at least two seeds, `borderline` when it "
                              "is 0.8 to 1.25 standard deviations, else `no clear difference`")


def test_format_verdicts_names_each_difference_with_its_word() -> None:
    diffs = {"tdsa": (16.8, 4.2, 5), "ce": (1.6, 8.2, 5), "no_gate": (-3.9, 3.9, 5)}
    assert format_verdicts(diffs) == ("tdsa higher, ce no clear difference, "
                                      "no_gate borderline lower")
    assert format_verdicts({}) == ""


@pytest.mark.parametrize(("share", "digits", "text"), [
    (0.1234, 1, "12.3"), (0.0, 1, "0.0"), (-0.002, 1, "-0.2"), (1.0, 1, "100.0"),
    (1 / 9, 2, "11.11"), (math.nan, 1, "n/a")])
def test_format_percent_is_the_share_in_points(share: float, digits: int, text: str) -> None:
    assert format_percent(share, digits) == text


@pytest.mark.parametrize(("a", "b", "text"), [
    (0.062, 0.075, "0.8×"), (0.3, 0.1, "3.0×"), (-0.2, 0.1, "-2.0×"), (0.3, 0.0, "n/a"),
    (math.nan, 0.1, "n/a"), (0.3, math.nan, "n/a")])
def test_format_ratio_divides_or_says_not_available(a: float, b: float, text: str) -> None:
    assert format_ratio(a, b) == text


@pytest.mark.parametrize(("a", "b", "words"), [
    (0.3, 0.1, "more than"), (-0.2, 0.0, "less than"), (0.25, 0.25, "as much as"),
    (math.nan, 0.1, "cannot be compared with"), (0.1, math.nan, "cannot be compared with")])
def test_compare_in_words(a: float, b: float, words: str) -> None:
    assert compare_in_words(a, b) == words


def test_a_borderline_part_does_not_carry_the_claim() -> None:
    assert BORDERLINE == (0.8, 1.25)
    wins = [run("ce", s, 40.0 + s, gradcam=0.10) for s in range(3)]
    wins += [run("tdsa", s, 50.0 + 2 * s, high=0.30 + 0.01 * s) for s in range(3)]
    # true - wrong: +1.0 ± 1.0 points (borderline) on every seed pair
    wobbly = [dict(r, **{fine_key("wrong_high"): r[fine_key("high")] - (0.0, 0.01, 0.02)[i % 3]})
              if r["variant"] == "tdsa" else r for i, r in enumerate(wins)]
    check = check_lever(wobbly, "lever", "ce", "tdsa")
    assert verdict(*check.diffs[1]) == "borderline higher"
    assert check.failed == ["vs wrong class"]


def test_the_claim_holds_only_when_all_four_comparisons_are_clearly_positive() -> None:
    wins = [run("ce", s, 40.0 + s, gradcam=0.10) for s in range(3)]
    wins += [run("tdsa", s, 50.0 + 2 * s, high=0.30 + 0.01 * s) for s in range(3)]
    check = check_lever(wins, "lever", "ce", "tdsa")
    assert check.holds and check.failed == [] and check.seeds == 3
    assert check.diffs[0][0] == pytest.approx(11.0)  # (10 + 11 + 12) / 3
    assert check.diffs[1][0] == pytest.approx(21.0)  # (30 + 31 + 32) / 3 - 10
    # a wrong class's channels as good as the true class's: saliency, not parts
    salient = [dict(r, **{fine_key("wrong_high"): r[fine_key("high")]})
               if r["variant"] == "tdsa" else r for r in wins]
    assert check_lever(salient, "lever", "ce", "tdsa").failed == ["vs wrong class"]
    # CE's Grad-CAM finds the fine parts better than the method's channels
    cam = [dict(r, **{fine_key("gradcam"): 0.5}) if r["variant"] == "ce" else r for r in wins]
    assert check_lever(cam, "lever", "ce", "tdsa").failed == ["vs CE Grad-CAM"]
    # one seed proves nothing
    assert check_lever(wins[:1] + wins[3:4], "l", "ce", "tdsa").failed == list(CLAIM_PARTS)


PAIRS = [("none (the book's regime: flattened head, 112 px)", "ce", "tdsa"),
         ("GAP head instead of the flattened map", "ce_gap", "tdsa_gap"),
         ("never run", "ce_x", "tdsa_x")]


def test_check_levers_skips_pairs_without_finished_runs() -> None:
    rows = [run("ce", 0, 40.0), run("tdsa", 0, 42.0), run("ce_gap", 0, 50.0),
            run("tdsa_gap", 0, 1.0, status="failed")]
    checks = check_levers(rows, PAIRS)
    assert [(c.ce, c.arm) for c in checks] == [("ce", "tdsa")]


def test_every_lever_pair_names_arms_of_the_committed_grids() -> None:
    variants = set()
    for grid in BOOK_GRIDS:
        spec = yaml.safe_load((REPO / "configs" / "ablations" / f"{grid}.yaml").read_text())
        variants |= set(spec["variants"])
    pairs = lever_pairs()
    assert len(pairs) == 15 and pairs[2] == (
        "none (the book's regime: flattened head, 112 px)", "ce", "tdsa")
    for lever, ce, arm in pairs:
        assert {ce, arm} <= variants, lever
        assert ce.startswith("ce"), f"{lever}: the first arm is a cross-entropy arm"
        baseline = load_grid(f"ablations/{'synthetic' if ce == 'ce' else 'levers'}")
        cfg = baseline.config(ce, 0)
        assert all(getattr(cfg.loss, k) == 0 for k in ("alpha_mid", "beta_mid", "alpha_high",
                                                        "beta_high")), f"{ce} is cross-entropy"


def test_a_baseline_no_grid_has_is_an_error(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    dump_config(Config(), base)
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "variants": {
        "tdsa": {"overrides": [], "baseline": "ce", "lever": "the loss"}}}))
    with pytest.raises(ConfigError, match="names baseline 'ce', which no grid of the sweep has"):
        ablate_lever_pairs([load_grid(path)])
    path.write_text(yaml.safe_dump({"base": str(base), "variants": {
        "tdsa": {"overrides": [], "baseline": "ce"}}}))
    with pytest.raises(ConfigError, match="needs both 'baseline'"):
        load_grid(path)


def test_lever_table_and_summary_state_the_checks() -> None:
    rows = [run("ce", s, 40.0 + s, gradcam=0.10) for s in range(3)]
    rows += [run("tdsa", s, 50.0 + 2 * s, high=0.30 + 0.01 * s) for s in range(3)]
    rows += [run("ce_gap", s, 60.0) for s in range(2)]
    rows += [run("tdsa_gap", s, 30.0 - s, wrong=0.3) for s in range(2)]
    checks = check_levers(rows, PAIRS)
    table = lever_table(rows, checks).splitlines()
    assert table[0].startswith("| lever | CE arm | method arm | seeds | CE top-1 (%) |")
    assert table[2] == ("| none (the book's regime: flattened head, 112 px) | ce | tdsa | 3 | "
                        "41.0 ± 1.0 | 52.0 ± 2.0 | +11.0 ± 1.0 | +21.0 ± 1.0 | +26.0 ± 1.0 | "
                        "+21.0 ± 1.0 | holds |")
    assert table[3].endswith("| 2 | 60.0 ± 0.0 | 29.5 ± 0.7 | -30.5 ± 0.7 | +0.0 ± 0.0 | "
                             "+25.0 ± 0.0 | +20.0 ± 0.0 | fails: accuracy, vs wrong class |")
    short = lever_table(rows, checks, parts=("vs wrong class",)).splitlines()
    assert short[0] == "| lever | CE arm | method arm | seeds | fine: true − wrong | claim |"
    with pytest.raises(ValueError, match="parts must be among"):
        lever_table(rows, checks, parts=("speed",))
    text = claim_summary(checks)
    assert text.startswith("**A regime where TDSA does what the paper claims:** tdsa (none")
    assert "Lower: tdsa_gap (GAP head instead of the flattened map)." in text
    assert "Fewer than 3 seeds (provisional): tdsa_gap." in text
    assert claim_summary(checks[1:]).startswith("**No lever here gives the paper's result.**")


def test_read_sweep_joins_grids_and_refuses_a_variant_in_two(tmp_path: Path) -> None:
    header = "variant,seed,status,final_top1,best_top1\n"
    (tmp_path / "a.csv").write_text(header + "ce,0,ok,40,41\ntdsa,0,ok,42,43\n")
    (tmp_path / "b.csv").write_text(header + "ce_gap,0,ok,50,51\n")
    rows = read_sweep(tmp_path, ("a", "b"))
    assert [r["variant"] for r in rows] == ["ce", "tdsa", "ce_gap"]
    (tmp_path / "c.csv").write_text(header + "ce,1,ok,30,31\n")
    with pytest.raises(DataError, match=r"c\.csv: variant 'ce' is also in a\.csv"):
        read_sweep(tmp_path, ("a", "c"))
    with pytest.raises(DataError, match=r"d\.csv: no such results file"):
        read_sweep(tmp_path, ("a", "d"))


def test_read_header_is_the_header_of_the_markdown_page(tmp_path: Path) -> None:
    from tdsa.experiments.evidence import read_header

    grid_path = tmp_path / "g.yaml"
    grid_path.write_text(yaml.safe_dump({
        "base": str(REPO / "configs" / "synthetic_tdsa.yaml"), "seeds": [0],
        "overrides": ["train.epochs=3"], "note": "a note",
        "variants": {"tdsa": {"overrides": []}}}))
    results = [RunResult("tdsa", 0, "ok", {"final_top1": 40.0, "best_top1": 41.5},
                         code="commit 0123456789ab")]
    csv_path, md_path = write_results(load_grid(grid_path), results, tmp_path / "r" / "g",
                                      "python -m tdsa ablate --grid g.yaml")
    header = read_header(csv_path.with_suffix(".json"))
    assert list(header) == ["Command", "Written", "Machine", "CPU", "Code", "Precision",
                            "Base config", "Numbers", "Split", "Note"]
    assert header["Code"].startswith("runs trained at `commit 0123456789ab`; page written at `")
    assert header["Command"] == "`python -m tdsa ablate --grid g.yaml`"
    assert header["Note"] == "a note"
    assert "1 runs finished, 0 failed; seeds [0]" in header["Written"]
    assert "overrides for every run: `train.epochs=3`" in header["Base config"]
    assert "bf16" in header["CPU"] and "train.amp=auto" in header["Precision"]
    page = md_path.read_text(encoding="utf-8").splitlines()
    assert page[2:12] == [f"- {k}: {v}" for k, v in header.items()], "the page shows the same"
    with pytest.raises(DataError, match=r"nope\.json: no such results header"):
        read_header(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(DataError, match=r"bad\.json: expected a JSON object with a 'header'"):
        read_header(bad)


def test_a_resumed_grid_keeps_every_command_that_made_it(tmp_path: Path) -> None:
    from tdsa.experiments.evidence import read_header
    from tdsa.experiments.grid import recorded_commands

    grid_path = tmp_path / "g.yaml"
    grid_path.write_text(yaml.safe_dump({
        "base": str(REPO / "configs" / "synthetic_tdsa.yaml"), "seeds": [0, 1],
        "variants": {"tdsa": {"overrides": []}}}))
    grid, out = load_grid(grid_path), tmp_path / "r" / "g"
    assert recorded_commands(out) == []
    first = "python -m tdsa ablate --grid g.yaml --out runs/g"
    resume = "python -m tdsa ablate --grid g.yaml --out runs/g --seeds 1 --only tdsa"
    results = [RunResult("tdsa", 0, "ok", {"final_top1": 40.0, "best_top1": 41.5})]
    write_results(grid, results, out, first)
    results.append(RunResult("tdsa", 1, "ok", {"final_top1": 42.0, "best_top1": 43.0}))
    csv_path, md_path = write_results(grid, results, out, resume)
    write_results(grid, results, out, resume)  # the same call again adds nothing
    assert recorded_commands(out) == [first, resume]
    header = read_header(csv_path.with_suffix(".json"))
    assert header["Command"] == f"`{first}`; resumed with `{resume}`"
    assert f"- Command: `{first}`; resumed with `{resume}`" in md_path.read_text(encoding="utf-8")
    # a file written before the list existed: its single command is kept
    old = tmp_path / "old.json"
    old.write_text('{"header": {"Command": "`python -m tdsa ablate --grid old.yaml`"}}')
    assert recorded_commands(tmp_path / "old") == ["python -m tdsa ablate --grid old.yaml"]


def test_committed_results_have_their_header_as_data() -> None:
    from tdsa.experiments.evidence import read_header

    for name in ("synthetic", "levers"):
        header = read_header(REPO / "results" / f"{name}.json")
        page = (REPO / "results" / f"{name}.md").read_text(encoding="utf-8").splitlines()
        assert page[2:2 + len(header)] == [f"- {k}: {v}" for k, v in header.items()]
        assert f"--grid configs/ablations/{name}.yaml" in header["Command"]

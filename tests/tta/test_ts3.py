"""TS^3's state and step on the design's mirror toy and on known answers (tests T1, T3-T9, T11 of the design)."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F

from s3_hf.errors import InvalidConfigError, StreamMismatchError, StreamStateError
from s3_hf.options import SpaceParams
from s3_hf.space.geometry import build_space
from s3_hf.space.scoring import ScoringState, score
from s3_hf.tta import SavedState, TS3Config, TS3State

D, C, TAU = 32, 4, 100.0
LABELS = ("zero", "one", "two", "three")


def mirror_toy(offset=(0.5, 0.5), sigma=0.1, per_class=250, image_seed=1):
    """The design's mirror toy: class 1's synonym points mirror class 0's across the hyperplane between their
    labels, and class 0's images sit between the two (plus ``w``), so static S^3 is a coin flip on class 0."""
    q = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    t, w, g = q[:C], q[10], q[20]
    points_gen = torch.Generator().manual_seed(0)

    def synonyms(c: int) -> torch.Tensor:
        noise = torch.randn(6, D, generator=points_gen, dtype=torch.float64) / math.sqrt(D)
        return F.normalize(t[c] + 0.3 * noise, dim=-1)

    normal = F.normalize(t[0] - t[1], dim=0)
    mirror = torch.eye(D, dtype=torch.float64) - 2 * torch.outer(normal, normal)
    first = synonyms(0)
    points = torch.cat([first, first @ mirror.T, synonyms(2), synonyms(3)]).float()
    means = [t[c] for c in range(C)]
    if offset is not None:
        means[0] = F.normalize(offset[0] * t[0] + offset[1] * t[1] + 0.7 * w, dim=0)
    image_gen = torch.Generator().manual_seed(image_seed)
    images = [
        F.normalize(
            0.8 * g
            + 0.6 * m
            + sigma * torch.randn(per_class, D, generator=image_gen, dtype=torch.float64) / math.sqrt(D),
            dim=-1,
        )
        for m in means
    ]
    # neighbourhoods: cos >= 0.9, i.e. chordal distance <= sqrt(0.2); every point kept
    space, _ = build_space(points, torch.arange(C).repeat_interleave(6), SpaceParams(radius=0.2**0.5, min_points=99))
    v = torch.cat(images).float()
    return v, score(v, ScoringState.from_space(space), "local_center"), torch.arange(C).repeat_interleave(per_class)


def permutation(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def run_stream(config, v, s, seed, batch=None):
    """Adapted logits in the original order, over one seeded stream."""
    perm = permutation(len(v), seed)
    state = TS3State(config, LABELS, D, TAU)
    batch = batch or len(v)
    z = torch.cat([state(v[perm[i : i + batch]], s[perm[i : i + batch]]) for i in range(0, len(v), batch)])
    out = torch.empty_like(z)
    out[perm] = z
    return out


def per_class(z, y):
    return [float((z.argmax(1)[y == c] == c).float().mean()) for c in range(C)]


@pytest.fixture(scope="module")
def toy():
    return mirror_toy()


def test_zero_weights_and_the_first_image_reduce_to_static_s3_bitwise(toy):
    v, s, _ = toy
    off = TS3Config(pos_alpha=0.0, neg_alpha=0.0, lam=0.0)
    assert torch.equal(run_stream(off, v, s, 1), TAU * s)
    for seed in (1, 2, 3):
        perm = permutation(len(v), seed)
        z = TS3State(TS3Config(), LABELS, D, TAU)(v[perm[:5]], s[perm[:5]])
        assert torch.equal(z[0], TAU * s[perm[0]])
        assert not torch.equal(z[1:], TAU * s[perm[1:5]])  # the state is used from the second image on


def test_recovery_on_the_mirror_toy(toy):
    v, s, y = toy
    static = per_class(TAU * s, y)
    assert 0.35 <= static[0] <= 0.65
    for seed in (1, 2, 3):
        adapted = per_class(run_stream(TS3Config(), v, s, seed), y)
        assert adapted[0] >= 0.90, (seed, adapted)
        assert all(a >= b - 0.01 for a, b in zip(adapted[1:], static[1:], strict=True))
        cache_only = per_class(run_stream(TS3Config(lam=0.0), v, s, seed), y)[0]
        shift_only = per_class(run_stream(TS3Config(pos_alpha=0.0, neg_alpha=0.0), v, s, seed), y)[0]
        assert static[0] < shift_only < cache_only < adapted[0]  # each term helps; together they help most


def test_a_confident_error_is_not_learned_away_from_the_labels():
    # class 0's images are nearer class 1: static S^3 is confidently wrong, and pseudo-labels never see the truth
    v, s, y = mirror_toy(offset=(0.4, 0.6))
    assert per_class(TAU * s, y)[0] <= 0.02
    for seed in (1, 2, 3):
        assert per_class(run_stream(TS3Config(), v, s, seed), y)[0] <= 0.05


def test_nothing_changes_when_there_is_nothing_to_recover():
    v, s, y = mirror_toy(offset=None, sigma=2.0)
    static = float(((TAU * s).argmax(1) == y).float().mean())
    assert 0.70 <= static <= 0.82
    for seed in (1, 2, 3):
        assert abs(float((run_stream(TS3Config(), v, s, seed).argmax(1) == y).float().mean()) - static) <= 0.01


def _entropy(s):
    logp = torch.log_softmax(TAU * s, -1)
    return -(logp.exp() * logp).sum(-1) / math.log(C)


def test_the_caches_and_sums_hold_exactly_what_the_rules_say(toy):
    v, s, _ = toy
    perm = permutation(len(v), 1)[:400]
    config = TS3Config()
    state = TS3State(config, LABELS, D, TAU)
    state(v[perm], s[perm])
    h, pred = _entropy(s[perm]), s[perm].argmax(1)
    for c in range(C):
        mine = torch.nonzero(pred == c).flatten()
        best = sorted(zip(h[mine].tolist(), mine.tolist(), strict=True))[: config.pos_size]
        assert state.pos.order[c] == [(x, i) for x, i in best]
        assert torch.equal(state.pos.keys[c, : len(best)], v[perm[[i for _, i in best]]])
        negatives = mine[(h[mine] > config.neg_entropy_low) & (h[mine] < config.neg_entropy_high)]
        assert [i for _, i in state.neg.order[c]] == [
            i for _, i in sorted(zip(h[negatives].tolist(), negatives.tolist(), strict=True))[: config.neg_size]
        ]
        fed = mine[h[mine] <= config.shift_entropy]
        assert int(state.class_counts[c]) == len(fed)
        mean = v[perm[fed]].double().mean(0) if len(fed) else torch.zeros(D, dtype=torch.float64)
        torch.testing.assert_close(state.class_sums[c].double() / max(len(fed), 1), mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(state.global_sum.double() / 400, v[perm].double().mean(0), atol=1e-6, rtol=0)
    assert any(state.neg.sizes()) and state.n_seen == 400


def memory_bound(c, d, config):
    items = c * (config.pos_size + config.neg_size) * (d + 2) * 4
    return items + math.ceil(c * c * config.neg_size / 8) + (c + 1) * (d + 1) * 4


def test_memory_is_bounded_whatever_the_stream_length():
    v, s, _ = mirror_toy(sigma=1.0, per_class=2500)
    perm = permutation(len(v), 1)
    state = TS3State(TS3Config(), LABELS, D, TAU)
    state(v[perm[:1000]], s[perm[:1000]])
    small = state.state_dict().nbytes()
    state(v[perm[1000:]], s[perm[1000:]])
    assert state.n_seen == 10_000
    assert max(state.pos.sizes()) <= 3 and max(state.neg.sizes()) <= 2 and any(state.neg.sizes())
    assert state.state_dict().nbytes() == small <= memory_bound(C, D, TS3Config())


def test_results_do_not_depend_on_the_batch_size(toy):
    v, s, _ = toy
    ones = run_stream(TS3Config(), v, s, 2, batch=1)
    assert torch.equal(ones, run_stream(TS3Config(), v, s, 2, batch=7))
    assert torch.equal(ones, run_stream(TS3Config(), v, s, 2, batch=64))


def test_streams_are_deterministic_and_resettable(toy):
    v, s, _ = toy

    def digest(seed):
        return hashlib.sha256(permutation(len(v), seed).numpy().tobytes()).hexdigest()

    assert digest(1) == digest(1) and digest(0) != digest(1)
    assert torch.equal(run_stream(TS3Config(), v, s, 1), run_stream(TS3Config(), v, s, 1))
    state = TS3State(TS3Config(), LABELS, D, TAU)
    first = state(v, s)
    state.reset()
    assert state.n_seen == 0 and torch.equal(state(v, s), first)


def test_a_saved_state_continues_exactly(toy, tmp_path):
    v, s, _ = toy
    whole = TS3State(TS3Config(), LABELS, D, TAU, model="m", space_hash="abc")(v, s)
    half = TS3State(TS3Config(), LABELS, D, TAU, model="m", space_hash="abc")
    half(v[:300], s[:300])
    half.state_dict().save(tmp_path / "state.safetensors")
    resumed = TS3State(TS3Config(), LABELS, D, TAU, model="m", space_hash="abc")
    resumed.load_state_dict(SavedState.load(tmp_path / "state.safetensors"))
    assert resumed.n_seen == 300
    assert torch.equal(resumed(v[300:], s[300:]), whole[300:])


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"labels": ("zero", "one", "two", "four")}, "labels"),
        ({"model": "other"}, "model"),
        ({"space_hash": "def"}, "space_hash"),
        ({"config": TS3Config(lam=0.2)}, "config_hash"),
    ],
)
def test_a_state_from_another_stream_is_refused(toy, change, what):
    v, s, _ = toy
    made = {"config": TS3Config(), "labels": LABELS, "model": "m", "space_hash": "abc"}
    saved = TS3State(made["config"], made["labels"], D, TAU, model="m", space_hash="abc")
    saved(v[:50], s[:50])
    other = {**made, **change}
    target = TS3State(other["config"], other["labels"], D, TAU, model=other["model"], space_hash=other["space_hash"])
    with pytest.raises(StreamMismatchError, match=what):
        target.load_state_dict(saved.state_dict())
    assert target.n_seen == 0


def test_other_labels_and_other_models_are_refused(toy):
    v, s, _ = toy
    state = TS3State(TS3Config(), LABELS, D, TAU)
    state.check_labels(LABELS)
    with pytest.raises(StreamMismatchError, match="other labels"):
        state.check_labels(("zero", "one", "two"))
    with pytest.raises(StreamMismatchError, match="other labels"):
        state(v[:2], s[:2, :3])
    with pytest.raises(StreamMismatchError, match="another model"):
        state(torch.zeros(2, 16), s[:2])
    assert state.n_seen == 0


def test_a_damaged_state_is_refused_and_nothing_is_half_loaded(toy, tmp_path):
    v, s, _ = toy
    state = TS3State(TS3Config(), LABELS, D, TAU)
    state(v[:100], s[:100])
    good = state.state_dict()
    target = TS3State(TS3Config(), LABELS, D, TAU)
    target(v[:10], s[:10])
    before = target.state_dict().tensors
    damaged = [
        {**good.tensors, "pos_entropy": good.tensors["pos_entropy"].flip(-1)},
        {**good.tensors, "neg_keys": good.tensors["neg_keys"][:, :1]},
        {k: t for k, t in good.tensors.items() if k != "class_sums"},
        {**good.tensors, "global_sum": torch.full((D,), float("nan"))},
    ]
    for tensors in damaged:
        with pytest.raises(StreamStateError):
            target.load_state_dict(SavedState(tensors, good.meta))
        assert all(torch.equal(before[k], t) for k, t in target.state_dict().tensors.items())
    path = tmp_path / "state.safetensors"
    good.save(path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(StreamStateError, match="not a readable state file"):
        SavedState.load(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"neg_size": -1}, "Use 0 to turn that cache off"),
        ({"pos_size": 1.5}, "pos_size"),
        ({"neg_entropy_high": 1.2}, r"in \(0, 1\)"),
        ({"shift_entropy": 0.0}, r"in \(0, 1\)"),
        ({"neg_entropy_low": 0.8}, "must be below neg_entropy_high"),
        ({"lam": float("nan")}, "lam"),
        ({"tda_compat": 1}, "True or False"),
    ],
)
def test_bad_options_say_what_to_do(options, message):
    with pytest.raises(InvalidConfigError, match=message):
        TS3Config(**options)


def test_the_config_hash_is_stable():
    assert TS3Config().config_hash() == TS3Config.from_dict(TS3Config().to_dict()).config_hash()
    assert TS3Config().config_hash() != TS3Config(kappa=3.5).config_hash()
    assert len(TS3Config().config_hash()) == 64
    with pytest.raises(InvalidConfigError, match="Unknown TS"):
        TS3Config.from_dict({"alpha": 1.0})

"""What a space's model card tells the Hub: the S^3 paper (and SSP's where a few-shot adapter is present) by arXiv
id, the license, the base model with its relation, a citation; evaluation results as model-index with Hub dataset
ids and as .eval_results files huggingface_hub's own loader reads; and what `s3 push` carries of a folder's card."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml
from helpers import SYNONYMS, fake_hub
from huggingface_hub import ModelCard, parse_eval_result_entries

from s3_hf.cli import main
from s3_hf.fewshot import SSPConfig, fit_for_space
from s3_hf.space.card import BASE_MODEL_RELATION, S3_PAPER, SSP_PAPER, render_card
from s3_hf.space.card_results import EVAL_RESULTS_FOLDER, HEADER

HUB_BASE = "openai/clip-vit-base-patch32"
REVISION = "c0ffee0000000000000000000000000000000000"


def _front(card: str) -> dict:
    return yaml.safe_load(card.split("---")[1])


def _adapter(space, mode: str = "ssp"):
    torch.manual_seed(0)
    dim = space.config.embedding_dim
    glob = torch.nn.functional.normalize(torch.randn(6, dim), dim=-1)
    local = torch.nn.functional.normalize(torch.randn(6, 4, dim), dim=-1)
    config = SSPConfig(mode=mode)
    return fit_for_space(space, [0, 1, 2], glob, local, [0, 1, 2, 0, 1, 2], "local_center", config=config)


@pytest.fixture(scope="module")
def hub_space(small_space):
    space = copy.deepcopy(small_space)
    space.config.base_model = HUB_BASE
    return space


def test_the_card_links_the_paper_names_license_and_relation_and_cites(hub_space):
    card = render_card(hub_space, "org/pets")
    front = _front(card)
    assert front["license"] == "apache-2.0" and front["base_model"] == HUB_BASE
    assert front["base_model_relation"] == BASE_MODEL_RELATION == "adapter"
    assert f"arxiv:{S3_PAPER.arxiv}" in front["tags"] and S3_PAPER.arxiv == "2412.04925"
    assert f"https://arxiv.org/abs/{S3_PAPER.arxiv}" in card and "```bibtex\n@article{yin2024s3," in card
    assert SSP_PAPER.arxiv not in card  # no adapter, no SSP
    # both ways to use it: transformers alone (the repo's own code) and s3-hf, which is not on PyPI
    assert 'pipeline(model="org/pets", trust_remote_code=True)' in card and 'clf("photo.jpg")' in card
    assert 'synonym_space="org/pets"' in card and "pip install s3-hf" not in card
    assert "this project's repository" in card
    assert _front(render_card(hub_space, license="mit"))["license"] == "mit"


def test_a_local_base_model_has_no_relation(small_space):
    front = _front(render_card(small_space))
    assert "base_model" not in front and "base_model_relation" not in front and front["license"] == "apache-2.0"


def test_an_adapter_saved_beside_the_space_adds_ssp_to_its_card(small_space, tmp_path):
    folder = small_space.save_pretrained(tmp_path / "space", repo_id="org/pets")
    adapter = _adapter(small_space)
    for _ in range(2):  # saved again: one section, one tag
        adapter.save_pretrained(folder, repo_id="org/pets")
        card = (folder / "README.md").read_text()
        assert _front(card)["tags"].count(f"arxiv:{SSP_PAPER.arxiv}") == 1
        assert card.count("## Few-shot adapter") == 1 and card.count("@inproceedings{zhu2024ssp,") == 1
    assert f"https://arxiv.org/abs/{SSP_PAPER.arxiv}" in card and 'support="org/pets"' in card
    assert card.index("## Few-shot adapter") < card.index("## Citation")
    assert f"arxiv:{S3_PAPER.arxiv}" in _front(card)["tags"]
    _adapter(small_space, "cache").save_pretrained(folder)  # the cache baseline is not SSP
    card = (folder / "README.md").read_text()
    assert "## Few-shot adapter" in card and SSP_PAPER.arxiv not in card


def test_an_adapter_never_edits_a_card_s3_hf_did_not_write(small_space, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "README.md").write_text("# my notes\n")
    _adapter(small_space).save_pretrained(tmp_path / "mine")
    assert (tmp_path / "mine" / "README.md").read_text() == "# my notes\n"


def test_a_pushed_space_with_its_adapter_has_both_papers_in_its_card(hub_space):
    with fake_hub({}) as hub:
        hub_space.push_to_hub("org/pets", token="hf_fake", adapter=_adapter(hub_space))
    card = hub.repos["org/pets"]["README.md"].decode()
    tags = _front(card)["tags"]
    assert f"arxiv:{S3_PAPER.arxiv}" in tags and f"arxiv:{SSP_PAPER.arxiv}" in tags
    assert 'support="org/pets"' in card and 'pipeline(model="org/pets", trust_remote_code=True)' in card


# ------------------------------------------------------------------------------------------ evaluation results
def _results(space, **hub) -> dict:
    method = f"s3/syn/{space.config.metric}"
    bench = {
        "model": space.config.base_model,
        "class_names": list(space.labels),
        "random_weights": False,
        "methods": {"label": {"top1": 0.5}, method: {"top1": 0.625}},
        "synonyms": {method: space.classes[0].source},
    }
    return {
        "model": space.config.base_model,
        "revision": space.config.base_model_revision,
        "random_weights": False,
        "benchmarks": {
            "cifar10": {**bench, **hub},
            "mine": {**bench, "identity": {"path": "/data/mine", "fingerprint": "x"}},
        },
    }


def _card(folder, results, tmp_path) -> int:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return main(["card", str(folder), "--results", str(path)])


def test_results_go_into_model_index_with_hub_ids_and_into_eval_results_files(small_space, tmp_path):
    folder = small_space.save_pretrained(tmp_path / "space")
    hub = {"dataset_id": "clip-benchmark/wds_cifar10", "dataset_revision": REVISION}
    assert _card(folder, _results(small_space, **hub), tmp_path) == 0
    index = {(r.dataset_name, r.metric_name): r for r in ModelCard.load(folder / "README.md").data.eval_results}
    method = f"s3/syn/{small_space.config.metric}"
    own = index[("cifar10", f"top-1 accuracy ({method})")]
    assert own.dataset_type == "clip-benchmark/wds_cifar10" and own.dataset_revision == REVISION
    assert own.metric_value == 0.625 and index[("cifar10", "top-1 accuracy (label)")].metric_value == 0.5
    assert index[("mine", "top-1 accuracy (label)")].dataset_type == "mine"  # a local folder has no Hub id
    (file,) = (folder / EVAL_RESULTS_FOLDER).iterdir()
    assert file.name == "cifar10.yaml" and file.read_text().startswith(HEADER)
    (entry,) = parse_eval_result_entries(yaml.safe_load(file.read_text()))  # huggingface_hub's own loader
    assert entry.dataset_id == "clip-benchmark/wds_cifar10" and entry.dataset_revision == REVISION
    assert entry.value == 0.625 and entry.task_id == "zeroshot_classification" and method in entry.notes


def test_results_that_record_no_dataset_id_take_it_from_their_identity_or_the_registry(small_space, tmp_path):
    folder = small_space.save_pretrained(tmp_path / "space")
    identity = {"identity": {"hub_id": "clip-benchmark/wds_cifar10", "split": "test", "fingerprint": "f"}}
    assert _card(folder, _results(small_space, **identity), tmp_path) == 0
    (entry,) = parse_eval_result_entries(yaml.safe_load((folder / EVAL_RESULTS_FOLDER / "cifar10.yaml").read_text()))
    assert entry.dataset_id == "clip-benchmark/wds_cifar10" and entry.dataset_revision is None
    assert _card(folder, _results(small_space), tmp_path) == 0  # written before identities: the registry's id
    card = ModelCard.load(folder / "README.md")
    assert {r.dataset_type for r in card.data.eval_results if r.dataset_name == "cifar10"} == {
        "clip-benchmark/wds_cifar10"
    }


def test_saving_again_keeps_an_eval_results_folder_with_a_users_file(small_space, tmp_path):
    folder = small_space.save_pretrained(tmp_path / "space")
    hub = {"dataset_id": "clip-benchmark/wds_cifar10", "dataset_revision": REVISION}
    assert _card(folder, _results(small_space, **hub), tmp_path) == 0
    (folder / EVAL_RESULTS_FOLDER / "mine.yaml").write_text("- dataset: {id: me/mine}\n")
    small_space.save_pretrained(folder)
    assert sorted(p.name for p in (folder / EVAL_RESULTS_FOLDER).iterdir()) == ["cifar10.yaml", "mine.yaml"]


def test_random_weight_results_are_still_refused_and_nothing_is_written(small_space, tmp_path, capsys):
    folder = small_space.save_pretrained(tmp_path / "space")
    before = (folder / "README.md").read_text()
    assert _card(folder, {**_results(small_space), "random_weights": True}, tmp_path) == 2
    assert "random weights" in capsys.readouterr().err
    assert (folder / "README.md").read_text() == before and not (folder / EVAL_RESULTS_FOLDER).exists()


def test_s3_push_carries_the_folders_license_and_results_until_the_space_is_rebuilt(small_space, tmp_path):
    from s3_hf import build_synonym_space

    folder = small_space.save_pretrained(tmp_path / "space")
    hub = {"dataset_id": "clip-benchmark/wds_cifar10", "dataset_revision": REVISION}
    assert _card(folder, _results(small_space, **hub), tmp_path) == 0
    results_file = f"{EVAL_RESULTS_FOLDER}/cifar10.yaml"
    with fake_hub({}) as hub_:
        assert main(["push", str(folder), "org/pets", "--token", "hf_fake", "--license", "mit"]) == 0
        repo = hub_.repos["org/pets"]
        card = ModelCard(repo["README.md"].decode())
        assert card.data.license == "mit" and any(r.metric_value == 0.625 for r in card.data.eval_results)
        assert repo[results_file] == (folder / results_file).read_bytes()
        assert 'pipeline(model="org/pets"' in repo["README.md"].decode()  # rendered afresh for the repo
        fewer = {label: words[:2] for label, words in SYNONYMS.items()}
        model_tokenizer = _tiny(small_space)
        rebuilt = build_synonym_space(*model_tokenizer, list(SYNONYMS), fewer, base_model=small_space.config.base_model)
        rebuilt.save_pretrained(folder)  # its card has no results: those of the old space are not pushed again
        assert not (folder / EVAL_RESULTS_FOLDER).exists()  # nor kept in the folder
        assert main(["push", str(folder), "org/pets", "--token", "hf_fake"]) == 0
        assert results_file not in repo and not ModelCard(repo["README.md"].decode()).data.eval_results
        assert hub_.commits[-1]["deleted"] == [results_file]


def _tiny(space):
    from transformers import AutoTokenizer, CLIPModel

    base = space.config.base_model
    return CLIPModel.from_pretrained(base).eval(), AutoTokenizer.from_pretrained(base)

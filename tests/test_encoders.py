"""Any Hugging Face encoder (``features.text: ft``, ``finetune.encoder``): tiny randomly initialised BERT, RoBERTa,
MPNet and DeBERTa models, built here from their configs with their own tokenizer families (no download), each through
fine-tuning, extraction, training and ``predict.py``; an encoder that is not available is one line."""
import dataclasses
import json

import pytest
import torch
import yaml
from transformers import AutoModel, BertConfig, MPNetConfig

from erc.data.datasets import load_dialogues
from erc.features.extract import extract
from erc.training.finetune import finetune_datasets, micro_batches, save_finetuned
from erc.data.graphs import build_graphs
from erc.runtime.errors import InputError
from erc.training.losses import task_loss
from erc.training.train import train_model
from erc.config.params import validate_params
from erc.features.text import minilm_dir
from erc.features.utterance_encoder import Inputs, UtteranceClassifier, resolve_encoder

from conftest import RAW, SIZE, bytelevel_bpe, tiny_encoder
from test_bad_input import run_script

IDS = {"train": ["Ses03M_script03_1", "Ses04M_script01_3"], "valid": ["Ses03F_impro01"], "test": ["Ses05M_script01_2"]}


@pytest.fixture(scope="module")
def dialogues():
    wanted = {i for ids in IDS.values() for i in ids}
    return [d for d in load_dialogues("iemocap", RAW) if d.id in wanted]


def tiny_params(encoder):
    return {"datasets": ["iemocap"], "workers": 1, "device": "cpu",
            "features": {"text": "ft", "audio": "praat"},
            "finetune": {"encoder": str(encoder), "epochs": 1, "batch_size": 8, "max_length": 48, "folds": 0,
                         "context": 1, "context_future": 1},
            "model": {"hidden": 16, "graph_hidden": 8, "graph_layers": 1},
            "train": {"epochs": 2, "seeds": [0]}, "mrl": {"nesting": [4]}, "mkd": {"enabled": False}}


@pytest.mark.parametrize("family", ["bert", "roberta", "mpnet", "deberta"])
def test_a_tiny_encoder_of_each_family_goes_through_the_whole_pipeline(family, tmp_path, dialogues):
    encoder = tiny_encoder(family, tmp_path, [s for d in dialogues for s in d.sentences])
    raw = tiny_params(encoder)
    params = validate_params(raw)
    hidden = [d if d.split != "test" else dataclasses.replace(d, labels=[-1] * len(d))
              for d in dialogues]  # the stage never holds a test label
    result = finetune_datasets({"iemocap": hidden}, params, progress=False)["iemocap"]
    assert result["encoder"] == str(encoder) and result["context_future"] == 1
    save_finetuned(result, tmp_path / "models" / "finetuned" / "iemocap")
    summary = json.loads((tmp_path / "models" / "finetuned" / "iemocap" / "finetune.json").read_text())
    assert summary["encoder"] == str(encoder) and list(summary["encoders"]) == ["full"]

    feats = extract("iemocap", params, RAW, dialogues=dialogues, progress=False,
                    finetuned_dir=tmp_path / "models" / "finetuned")
    text = feats.features["text"]
    assert text.shape == (sum(len(d) for d in dialogues), 4, SIZE["hidden_size"]) and torch.isfinite(text).all()
    assert not torch.equal(text[:, -1], text[:, -2])  # four distinct layers, not one repeated

    lengths = feats.lengths.tolist()
    graphs = build_graphs(lengths, len(feats.features))
    checkpoint = train_model("iemocap", feats.but(labels=feats.labels.masked_fill(
        torch.tensor([s == "test" for s in feats.splits]).repeat_interleave(feats.lengths), -1)),
        graphs, params, progress=False)
    checkpoint.save(tmp_path / "models" / "iemocap.pt")

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "d.json").write_text(json.dumps([{"speaker": "F", "text": "I can't believe you did that."},
                                                 {"speaker": "M", "text": "Well, I did.",
                                                  "audio": [0.0] * (feats.features["audio"].shape[1] - 1)}]))
    result = run_script("predict.py", "d.json", "--dataset", "iemocap", cwd=tmp_path)  # in this process
    assert result.returncode == 0, result.stderr
    turns = json.loads(result.stdout)
    assert len(turns) == 2 and all(t["emotion"] in feats.classes for t in turns)


def test_context_future_adds_the_following_turns_behind_a_separator(dialogues):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    d = dialogues[0]
    past = Inputs(tokenizer, [d], "iemocap", context=1, max_length=160)
    both = Inputs(tokenizer, [d], "iemocap", context=1, max_length=160, future=1)
    sep = tokenizer.sep_token_id
    following = tokenizer(f"{'MF'[d.speakers[1]]}:", add_special_tokens=False)["input_ids"] + \
        tokenizer(d.sentences[1], add_special_tokens=False)["input_ids"]
    assert both.ids[0][-len(following) - 2:] == [sep] + following + [sep]  # turn 0: no past, turn 1 after a [SEP]
    assert both.ids[0][:len(past.ids[0])] == past.ids[0]
    assert both.ids[-1] == past.ids[-1]  # the last turn has no following turn
    assert both.spans == past.spans  # the utterance itself never moves
    short = Inputs(tokenizer, [d], "iemocap", context=3, max_length=40, future=3)
    assert max(len(ids) for ids in short.ids) <= 40


def test_micro_batches_sum_to_the_batch_loss():
    torch.manual_seed(0)
    logits, labels = torch.randn(10, 3), torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 0])
    for name in ("weighted_nll", "ce", "focal"):
        criterion = task_loss(name, labels, 3, 2.0)
        whole = criterion(logits, labels)
        parts = micro_batches(list(range(10)), criterion, labels, 3)
        assert [len(rows) for rows, _ in parts] == [4, 4, 2]
        summed = sum(criterion(logits[rows], labels[rows]) * share for rows, share in parts)
        assert torch.allclose(summed, whole, atol=1e-6), name


def test_accumulated_fine_tuning_takes_the_same_steps(tmp_path, dialogues):
    from erc.training.finetune import FinetuneJob, finetune
    encoder = tiny_encoder("bert", tmp_path, [])
    from transformers import AutoTokenizer
    inputs = Inputs(AutoTokenizer.from_pretrained(encoder), dialogues, "iemocap", 0, 48)
    labels = torch.tensor([y for d in dialogues for y in d.labels])
    rows = [r for r in range(len(labels))]
    settings = {"epochs": 1, "lr": 1e-3, "batch_size": 8, "seed": 0, "freeze_layers": 0, "warmup": 0.1,
                "loss": "weighted_nll", "precision": "fp32"}
    def job(**changes):
        return FinetuneJob(encoder, inputs, labels, rows[:40], rows[40:60], list(range(6)), {**settings, **changes},
                           progress=False)
    one, four = finetune(job()), finetune(job(accumulate=4))
    # dropout draws differ between the two ways of cutting a batch: the same loss scale, not the same bits
    assert one["history"][0]["train_loss"] == pytest.approx(four["history"][0]["train_loss"], rel=0.2)
    checkpointed = finetune(job(checkpointing=True))
    assert checkpointed["history"][0]["train_loss"] == pytest.approx(one["history"][0]["train_loss"], rel=1e-4)


def test_an_encoder_too_shallow_or_not_available_is_one_line(tmp_path, monkeypatch):
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8)
    AutoModel.from_config(config).save_pretrained(tmp_path / "shallow")
    with pytest.raises(InputError, match="2 layers; the features read the last 4 hidden states"):
        UtteranceClassifier(tmp_path / "shallow", 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="'.*empty': the folder has no config.json"):
        resolve_encoder(str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub here: the cache is looked in, then one line
    with pytest.raises(InputError, match=r"finetune.encoder 'no-such-org/no-such-model': not a local folder, not in "
                                         r"the Hugging Face cache.*hf download no-such-org/no-such-model"):
        resolve_encoder("no-such-org/no-such-model")


def test_checkpointing_an_encoder_without_it_is_one_line(tmp_path):
    """transformers has no activation checkpointing for MPNet: the key to change is named, not a traceback."""
    config = MPNetConfig(vocab_size=50, max_position_embeddings=40, pad_token_id=1, **SIZE)
    AutoModel.from_config(config).save_pretrained(tmp_path / "mpnet")
    with pytest.raises(InputError, match=r"^finetune.checkpointing: .*mpnet: .*not support.*\(set it to false\)$"):
        UtteranceClassifier(tmp_path / "mpnet", 3, checkpointing=True)
    AutoModel.from_config(BertConfig(vocab_size=50, max_position_embeddings=40, **SIZE)).save_pretrained(tmp_path / "b")
    assert UtteranceClassifier(tmp_path / "b", 3, checkpointing=True).encoder.is_gradient_checkpointing


def test_ft_without_an_encoder_is_refused_by_the_schema():
    with pytest.raises(InputError, match="'finetune.encoder' must name the encoder to fine-tune"):
        validate_params({"features": {"text": "ft"}})
    assert validate_params({"features": {"text": "ft"}, "finetune": {"encoder": "roberta-large"}}).finetune.encoder \
        == "roberta-large"


# each family's documented layout of a pair of texts (transformers 5's DeBERTa tokenizer doubles the middle [SEP])
LAYOUTS = {"bert": ("[CLS]", ["[SEP]"], ["[SEP]"]), "mpnet": ("<s>", ["</s>", "</s>"], ["</s>"]),
           "roberta": ("<s>", ["</s>", "</s>"], ["</s>"]), "deberta": ("[CLS]", ["[SEP]", "[SEP]"], ["[SEP]"])}


@pytest.mark.parametrize("family", ["bert", "roberta", "mpnet", "deberta"])
def test_utterance_and_context_take_each_familys_own_pair_layout(family, tmp_path, dialogues):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder(family, tmp_path, [s for d in dialogues for s in d.sentences]))
    opening, between, closing = (tokenizer.convert_tokens_to_ids(t) for t in LAYOUTS[family])
    d = dialogues[0]
    inputs = Inputs(tokenizer, [d], "iemocap", context=1, max_length=160)
    words = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in d.sentences[:2]]
    tag = tokenizer(f"{'MF'[d.speakers[0]]}:", add_special_tokens=False)["input_ids"]
    assert inputs.ids[0] == [opening] + words[0] + closing  # the first turn has no context: one text
    assert inputs.ids[1] == [opening] + words[1] + between + tag + words[0] + closing
    assert inputs.spans[1] == (1, 1 + len(words[1]))
    assert inputs.ids[0] == tokenizer(d.sentences[0])["input_ids"]  # as the tokenizer encodes one text itself


def test_a_tokenizer_without_an_opening_token_or_a_separator_is_one_line(tmp_path, dialogues):
    """GPT-2's tokenizer adds no special tokens; a Llama-style one opens with <s> but runs a pair's texts together:
    neither can lay out an utterance and its context, each refused by name."""
    from tokenizers import processors
    from transformers import GPT2TokenizerFast
    tokenizer = GPT2TokenizerFast(*bytelevel_bpe(tmp_path, [s for d in dialogues for s in d.sentences]),
                                  name_or_path="tiny-gpt2")
    with pytest.raises(InputError, match=r"^finetune.encoder \(tiny-gpt2\): its tokenizer's templates do not open"):
        Inputs(tokenizer, dialogues, "iemocap", context=1, max_length=64)
    (tmp_path / "llama").mkdir()
    llama_like = GPT2TokenizerFast(*bytelevel_bpe(tmp_path / "llama", [s for d in dialogues for s in d.sentences]),
                                   name_or_path="tiny-llama", bos_token="<s>")
    llama_like.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", llama_like.bos_token_id)])
    assert llama_like("a", "b")["input_ids"][0] == llama_like.bos_token_id  # it does open with <s>
    with pytest.raises(InputError, match=r"^finetune.encoder \(tiny-llama\)"):
        Inputs(llama_like, dialogues, "iemocap", context=1, max_length=64)

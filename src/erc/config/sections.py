"""The sections of ``params.yaml`` a stage reads: each key's type, range, default and meaning (its ``description``,
which ``src/params_doc.py`` writes into docs/params.md). A key left out takes its default: the behaviour the
pipeline had before the key existed, mostly the released MGLRA's."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from erc.config.base import (ByDataset, NonNegativeFloat, PositiveFloat, Rate, Section, by_dataset,
                             per_dataset_type)

Loss = Literal["weighted_nll", "focal", "ce"]


class FileSources(Section):
    text: Optional[str] = None
    audio: Optional[str] = None
    visual: Optional[str] = None


class Features(Section):
    # ft: the encoder finetune.encoder names, fine-tuned (minilm-ft / mpnet-ft: the two offline packages, fine-tuned);
    # per dataset because validation may pick a different source for each
    text: per_dataset_type(Literal["minilm", "mpnet", "minilm-ft", "mpnet-ft", "ft", "file", "none"]) = Field(
        "minilm", description="text features: frozen sentence encoders, their fine-tuned forms (stage finetune_text), "
                              "a standard feature file, or none")
    audio: Literal["praat", "praat-wav", "opensmile", "file", "none"] = Field(
        "praat", description="audio features: shipped Praat descriptors, the same measured from wavs, openSMILE "
                             "eGeMAPS, a feature file, or none")
    visual: Literal["file", "none"] = Field("none", description="visual features: a feature file or none (no video "
                                                                "here)")
    text_batch_size: PositiveInt = Field(64, description="utterances per batch when a frozen encoder reads the text")
    files: by_dataset(FileSources) = Field(
        default={"iemocap": {}, "meld": {}}, validate_default=True,
        description="standard public feature pickles per dataset and modality, for the `file` sources "
                    "(docs/features.md)")
    wav_dirs: by_dataset(Optional[str]) = Field(
        default={"iemocap": None, "meld": None}, validate_default=True,
        description="raw wav folders per dataset, for audio `praat-wav` / `opensmile`")

    @model_validator(mode="after")
    def some_modality(self):
        texts = list(dict(self.text).values()) if isinstance(self.text, ByDataset) else [self.text]
        if "none" in texts and self.audio == self.visual == "none":
            raise ValueError("selects no modality (text, audio and visual are all none)")
        return self


class Graphs(Section):
    window_past: Annotated[int, Field(ge=-1)] = Field(
        -1, description="past utterances an utterance's graph node connects to (-1: the whole dialogue)")
    window_future: Annotated[int, Field(ge=-1)] = Field(
        -1, description="future utterances it connects to (-1: the whole dialogue)")


class Model(Section):
    hidden: per_dataset_type(PositiveInt) = Field(128, description="D_g, the width of each modality's encoder")
    graph_hidden: PositiveInt = Field(
        128, description="H, the graph layers' width; a modality block of the fused vector is 2H wide")
    graph_layers: NonNegativeInt = Field(4, description="masked gated graph convolution layers")
    attention_heads: PositiveInt = Field(2, description="heads of the cross-modal attention from text")
    dropout: Rate = Field(
        0.5, description="dropout inside the model (BiLSTMs, before the classifier and the student heads)")
    # once or per dataset: validation chose 0.5 on MELD only
    input_dropout: per_dataset_type(Rate) = Field(0.0, description="dropout on each modality's input features")
    mask_ratio: Rate = Field(0.5, description="share of the graph layers' input features masked in training")
    av_lstm: bool = Field(False, description="audio and visual get a BiLSTM like text's (released: a Linear only)")
    speaker: Literal["text", "all", "encoder"] = Field(
        "text", description="where the speaker embedding is added: text nodes (released), every modality's nodes, "
                            "or before each BiLSTM")
    speaker_init_std: PositiveFloat = Field(
        1.0, description="std of the speaker embedding's normal init (released: 1.0)")
    block_order: Literal["graph_first", "released"] = Field(
        "graph_first", description="layout of a modality block: [graph output | projection] or the released order")
    faithful: bool = Field(
        False, description="reproduce the released code's quirks (attention across a batch's dialogues, mask at test "
                           "time)")

    @model_validator(mode="after")
    def widths_fit(self):
        widths = [self.hidden] if isinstance(self.hidden, int) else list(dict(self.hidden).values())
        for width in widths:
            if width % 2 or width % self.attention_heads:
                raise ValueError(f"hidden {width} must be even (BiLSTM directions) and divisible by "
                                 f"attention_heads {self.attention_heads}")
        return self


class Train(Section):
    lr: PositiveFloat = Field(
        1e-3, description="Adam learning rate of the model and the teachers (the bc-LSTM has references.bclstm_lr)")
    weight_decay: NonNegativeFloat = Field(3e-5, description="Adam weight decay")
    batch_size: PositiveInt = Field(16, description="dialogues per batch")
    epochs: per_dataset_type(PositiveInt) = Field(
        default={"iemocap": 60, "meld": 20}, validate_default=True,
        description="epochs; the kept epoch is the best on validation weighted F1")
    seeds: Annotated[list[NonNegativeInt], Field(min_length=1)] = Field(
        [0, 1, 2, 3, 4], description="one run per seed; metrics are mean ± std over them")
    loss: per_dataset_type(Loss) = Field(
        default={"iemocap": "weighted_nll", "meld": "focal"}, validate_default=True,
        description="task loss: class-weighted NLL (IEMOCAP), the released focal variant (MELD), or cross-entropy")
    focal_gamma: NonNegativeFloat = Field(2.5, description="γ of the focal loss")
    # zeroed, flag set, so that the model also learns to work from text alone; MGLRA's training only (not teachers,
    # not references)
    modality_dropout: Rate = Field(
        0.0, description="chance a training utterance's audio / visual is marked missing (robust to text only)")
    # a whole dialogue: every utterance of it, what a text-only dialogue is
    modality_dropout_unit: Literal["utterance", "dialogue"] = Field(
        "utterance", description="one draw per utterance, or per dialogue")

    @model_validator(mode="after")
    def distinct_seeds(self):
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        return self


class Teachers(Section):
    seed: NonNegativeInt = Field(0, description="seed of the unimodal teachers")


class Finetune(Section):
    """The finetune_text stage (features.text: minilm-ft | mpnet-ft | ft), run by erc.training.finetune."""
    # minilm | mpnet are the offline packages; a model id is read from the local cache, or the hub where reachable;
    # a local directory is in the transformers layout
    encoder: per_dataset_type(Optional[Annotated[str, Field(min_length=1)]]) = Field(
        None, description="what `features.text: ft` fine-tunes: minilm, mpnet, a Hugging Face model id or a local "
                          "folder")
    epochs: per_dataset_type(PositiveInt) = Field(
        default={"iemocap": 4, "meld": 3}, validate_default=True,
        description="fine-tuning epochs of the text encoder; the kept epoch is the best on validation")
    lr: PositiveFloat = Field(1e-4, description="AdamW learning rate (linear warm-up, then linear decay)")
    batch_size: PositiveInt = Field(32, description="utterances per fine-tuning batch")
    max_length: Annotated[int, Field(ge=16, le=512)] = Field(
        160, description="tokens of utterance plus context; the context is cut from its oldest side")
    seed: NonNegativeInt = Field(0, description="seed of the fine-tuning (and of the fold assignment)")
    freeze_layers: NonNegativeInt = Field(  # 0: none
        0, description="the embeddings and this many lowest encoder layers stay frozen")
    warmup: Rate = Field(0.1, description="share of the steps with a linear learning-rate warm-up")
    # context ... eval_from: once or per dataset, validation chooses the recipe for each
    context: per_dataset_type(NonNegativeInt) = Field(
        0, description="previous turns, with speaker tags, as a second input segment")
    context_future: per_dataset_type(NonNegativeInt) = Field(
        0, description="following turns, with speaker tags, after the previous ones (EmoBERTa's context)")
    folds: per_dataset_type(NonNegativeInt) = Field(  # 0: none, else >= 2
        0, description="cross-fitting: training utterances' features from an encoder fine-tuned without their fold")
    fold_by: per_dataset_type(Literal["dialogue", "session"]) = Field(
        "dialogue", description="what a fold deals: dialogues, or IEMOCAP sessions (speaker-disjoint folds)")
    eval_from: per_dataset_type(Literal["full", "folds"]) = Field(
        "full", description="validation / test features from the encoder on all training dialogues, or the folds' "
                            "mean")
    loss: per_dataset_type(Loss) = Field(
        default={"iemocap": "weighted_nll", "meld": "ce"}, validate_default=True,
        description="the fine-tuning classifier's loss")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32, or bf16 / fp16 autocast of the encoder on CUDA (fp16 with a gradient scaler; "
                            "refused on a CPU)")
    accumulate: PositiveInt = Field(
        1, description="micro-batches a batch runs as (gradients summed, one step): the same update, less memory")
    checkpointing: bool = Field(
        False, description="gradient checkpointing of the encoder: less activation memory, more time")

    @model_validator(mode="after")
    def folds_are_none_or_several(self):
        for name, k in (dict(self.folds).items() if isinstance(self.folds, ByDataset) else [("", self.folds)]):
            if k == 1:
                raise ValueError(f"folds{'.' + name if name else ''} must be 0 (no cross-fitting) or at least 2, got 1")
        meld = self.fold_by.meld if isinstance(self.fold_by, ByDataset) else self.fold_by
        if meld == "session":
            where = "fold_by.meld" if isinstance(self.fold_by, ByDataset) else "fold_by (once, so MELD's too)"
            raise ValueError(f"{where}: MELD has no sessions; fold by session on IEMOCAP only "
                             "({iemocap: session, meld: dialogue})")
        return self


class Mrl(Section):
    enabled: bool = Field(True, description="Matryoshka heads: nested prefixes of each modality block classify too")
    shared: bool = Field(False, description="MRL-E: one classifier whose columns serve every nesting size")
    nesting: list[PositiveInt] = Field(  # []: the full block only
        [8, 16, 32, 64, 128], description="prefix sizes per modality block below its full width (always added)")
    weights: Optional[list[NonNegativeFloat]] = Field(
        None, description="loss weight per nesting size, full width included (null: all 1)")
    # mean keeps λ_ce / λ_kd comparable
    reduction: Literal["sum", "mean"] = Field(
        "sum", description="sum the size losses (MRL), or divide by the summed weights")


class Mkd(Section):
    enabled: bool = Field(True, description="modality-wise distillation from frozen unimodal teachers")
    lambda_ce: NonNegativeFloat = Field(1.0, description="weight of each student head's own task loss")
    lambda_kd: NonNegativeFloat = Field(1.0, description="weight of each student's distillation term")
    temperature: PositiveFloat = Field(1.0, description="distillation temperature T (the term is scaled by T²)")
    placement: Literal["unimodal", "encoder", "graph"] = Field(
        "unimodal", description="where a student head reads: the modality's own encoder (the paper's U_k), after "
                                "attention, or its post-graph block")
    # fused: the full output, audio marked missing; student: the text student head U_text, which never sees audio
    # (unimodal placement only); teacher: the frozen text teacher; student+teacher: the mean of their
    # probabilities. An answer the checkpoint cannot give falls back to fused (erc.models.mglra.text_only_head)
    text_only: per_dataset_type(Literal["fused", "student", "teacher", "student+teacher"]) = Field(
        "fused", description="what answers a dialogue without audio (evaluate's text-only figures, predict.py)")


class References(Section):
    logreg_C: Annotated[list[PositiveFloat], Field(min_length=1)] = Field(
        [0.01, 0.1, 1.0, 10.0], description="the logistic regression's C grid, chosen on validation")
    bclstm_hidden: PositiveInt = Field(128, description="the bc-LSTM's hidden width")
    bclstm_lr: PositiveFloat = Field(1e-3, description="the bc-LSTM's learning rate")

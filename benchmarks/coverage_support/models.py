"""The coverage suite: real architectures from timm and Hugging Face transformers, random-initialised.

Each entry builds a torch module in eval mode and its example inputs, offline (timm with
pretrained=False, transformers from a config object). Sizes are small where the architecture allows
(images 160, or 224 where the model fixes it; text encoders with 2 layers, hidden 128, sequence 64)
so the whole suite compiles in well under an hour on a 2-core machine; the ops and their
arrangement are the real ones.

Nothing here imports timm or transformers at module level: the benchmark lists and runs models
without them, and each builder runs in its own subprocess (runner.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # "timm" or "transformers": which package the builder needs
    family: str  # cnn / vit / text / audio / vision: for the table
    build: Callable[[], tuple[torch.nn.Module, tuple[torch.Tensor, ...]]] = field(repr=False)


def _image(size: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)),)


def _timm(model_name: str, size: int = 160, **kwargs):
    def build():
        import timm

        torch.manual_seed(0)
        model = timm.create_model(model_name, pretrained=False, **kwargs).eval()
        return model, _image(size)

    return build


class _LastHidden(torch.nn.Module):
    """A transformers model called with named inputs, returning one tensor (last_hidden_state or logits):
    what a user exporting an encoder gets, without the ModelOutput container."""

    def __init__(self, model: torch.nn.Module, input_names: tuple[str, ...], output: str = "last_hidden_state"):
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.output = output

    def forward(self, *args):
        out = self.model(**dict(zip(self.input_names, args)), return_dict=True)
        return getattr(out, self.output)


SEQ = 64
VOCAB = 1000


def _text_inputs(with_mask: bool = True) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (1, SEQ), generator=g)
    return (ids, torch.ones(1, SEQ, dtype=torch.int64)) if with_mask else (ids,)


def _batchnorm_statistics_from(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Set every BatchNorm's running mean and variance to the statistics of `inputs` flowing through the
    model, as training leaves them (the rest of the model stays in eval mode).

    With fresh statistics (mean 0, variance 1) BatchNorm normalises nothing, and a deep stack of small
    random convs (transformers initialises them with std 0.02) shrinks the signal layer by layer:
    MobileViT's output came out near 1e-40, in the float32 denormals, which XNNPACK flushes to zero.
    That compares rounding of denormals, not the compiled model.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one batch, exactly its statistics
        bn.train()
    with torch.no_grad():
        model(*inputs)
    model.eval()


def _hf(class_name: str, config_name: str, config: dict, inputs: Callable[[], tuple], input_names: tuple[str, ...],
        output: str = "last_hidden_state", submodule: str | None = None, batchnorm_statistics: bool = False):
    def build():
        import transformers

        torch.manual_seed(0)
        cfg = getattr(transformers, config_name)(**config)
        model = getattr(transformers, class_name)(cfg)
        if submodule:  # e.g. Whisper's encoder alone
            model = getattr(model, submodule)()
        wrapped, example = _LastHidden(model.eval(), input_names, output).eval(), inputs()
        if batchnorm_statistics:
            # Statistics from other images of the same distribution: the example input stays unseen.
            g = torch.Generator().manual_seed(1)
            _batchnorm_statistics_from(wrapped, tuple(torch.randn(4, *x.shape[1:], generator=g) for x in example))
        return wrapped, example

    return build


_TEXT = dict(vocab_size=VOCAB, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=256, max_position_embeddings=128)


def _text(class_name: str, config_name: str, mask: bool = True, **overrides):
    names = ("input_ids", "attention_mask") if mask else ("input_ids",)
    return _hf(class_name, config_name, {**_TEXT, **overrides}, lambda: _text_inputs(mask), names)


def _pixels(size: int):
    return lambda: _image(size)


def _audio(samples: int):
    return lambda: (torch.randn(1, samples, generator=torch.Generator().manual_seed(0)),)


_WAV2VEC2 = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                 conv_dim=(64,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def _suite() -> list[ModelSpec]:
    s: list[ModelSpec] = []

    def timm_model(name, family, size=160, **kw):
        s.append(ModelSpec(name, "timm", family, _timm(name, size, **kw)))

    # CNNs
    for name in ("resnet18", "resnet50", "regnetx_002", "regnety_002", "mobilenetv2_100", "mobilenetv3_small_100",
                 "mobilenetv3_large_100", "mobilenetv4_conv_small", "efficientnet_b0",
                 "convnext_atto", "ghostnet_100", "mnasnet_100", "densenet121", "repvgg_a0", "rexnet_100",
                 "lcnet_050", "mixnet_s", "hgnetv2_b0", "mobileone_s0", "edgenext_xx_small"):
        timm_model(name, "cnn")
    timm_model("vgg11", "cnn", size=224)  # its 7x7 pre-logits conv wants a 7x7 map (160 would upsample 5 -> 7)
    # Vision transformers and hybrids
    timm_model("vit_tiny_patch16_224", "vit", img_size=160)
    timm_model("deit_tiny_patch16_224", "vit", img_size=160)
    timm_model("mobilevit_xxs", "vit")
    timm_model("mobilevitv2_050", "vit")
    timm_model("efficientvit_b0", "vit")
    timm_model("efficientvit_m0", "vit", size=224)  # attention biases are sized for 224
    timm_model("levit_128s", "vit", size=224)  # attention biases are sized for 224
    timm_model("fastvit_t8", "vit")
    timm_model("pvt_v2_b0", "vit")
    timm_model("poolformer_s12", "vit")
    timm_model("swin_tiny_patch4_window7_224", "vit", size=224)  # 224/32 = 7: one window at the last stage

    # transformers, text encoders (and GPT-2 as a decoder without cache)
    s += [
        ModelSpec("hf_bert", "transformers", "text", _text("BertModel", "BertConfig")),
        ModelSpec("hf_distilbert", "transformers", "text", _text(
            "DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=128, n_layers=2, n_heads=2, hidden_dim=256,
            max_position_embeddings=128)),
        ModelSpec("hf_roberta", "transformers", "text", _text("RobertaModel", "RobertaConfig",
                                                              max_position_embeddings=SEQ + 4)),
        ModelSpec("hf_albert", "transformers", "text", _text("AlbertModel", "AlbertConfig", embedding_size=64)),
        ModelSpec("hf_electra", "transformers", "text", _text("ElectraModel", "ElectraConfig", embedding_size=64)),
        ModelSpec("hf_gpt2", "transformers", "text", _hf(
            "GPT2Model", "GPT2Config", dict(vocab_size=VOCAB, n_embd=128, n_layer=2, n_head=2, n_positions=128,
                                            use_cache=False),
            lambda: _text_inputs(True), ("input_ids", "attention_mask"))),
        ModelSpec("hf_t5_encoder", "transformers", "text", _hf(
            "T5EncoderModel", "T5Config", dict(vocab_size=VOCAB, d_model=128, d_kv=32, d_ff=256, num_layers=2,
                                               num_heads=4),
            lambda: _text_inputs(True), ("input_ids", "attention_mask"))),
        ModelSpec("hf_mobilebert", "transformers", "text", _text(
            "MobileBertModel", "MobileBertConfig", hidden_size=512, embedding_size=128, intra_bottleneck_size=128,
            num_attention_heads=4, intermediate_size=512, true_hidden_size=128, num_feedforward_networks=2)),
        ModelSpec("hf_deberta_v2", "transformers", "text", _text("DebertaV2Model", "DebertaV2Config")),
    ]
    # transformers, audio
    s += [
        ModelSpec("hf_wav2vec2", "transformers", "audio", _hf(
            "Wav2Vec2Model", "Wav2Vec2Config", _WAV2VEC2, _audio(8000), ("input_values",))),
        ModelSpec("hf_hubert", "transformers", "audio", _hf(
            "HubertModel", "HubertConfig", _WAV2VEC2, _audio(8000), ("input_values",))),
        ModelSpec("hf_whisper_encoder", "transformers", "audio", _hf(
            "WhisperModel", "WhisperConfig", dict(vocab_size=VOCAB, d_model=128, encoder_layers=2, decoder_layers=1,
                                                  encoder_attention_heads=2, decoder_attention_heads=2,
                                                  encoder_ffn_dim=256, decoder_ffn_dim=256, num_mel_bins=80,
                                                  max_source_positions=50, max_target_positions=32,
                                                  # the default special-token ids (50256, 50257) index GPT-2's
                                                  # vocabulary; a small vocabulary needs its own
                                                  pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                                  decoder_start_token_id=3, begin_suppress_tokens=None),
            lambda: (torch.randn(1, 80, 100, generator=torch.Generator().manual_seed(0)),), ("input_features",),
            submodule="get_encoder")),
    ]
    # transformers, vision
    vit = dict(image_size=128, patch_size=16, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=256)
    s += [
        ModelSpec("hf_vit", "transformers", "vision", _hf("ViTModel", "ViTConfig", vit, _pixels(128),
                                                          ("pixel_values",))),
        ModelSpec("hf_deit", "transformers", "vision", _hf("DeiTModel", "DeiTConfig", vit, _pixels(128),
                                                           ("pixel_values",))),
        ModelSpec("hf_convnext", "transformers", "vision", _hf(
            "ConvNextModel", "ConvNextConfig", dict(depths=[1, 1, 2, 1], hidden_sizes=[32, 64, 128, 256]),
            _pixels(128), ("pixel_values",))),
        ModelSpec("hf_mobilevit", "transformers", "vision", _hf(
            "MobileViTModel", "MobileViTConfig", dict(image_size=128), _pixels(128), ("pixel_values",),
            batchnorm_statistics=True)),
        ModelSpec("hf_segformer", "transformers", "vision", _hf(
            "SegformerModel", "SegformerConfig", {}, _pixels(128), ("pixel_values",))),
        ModelSpec("hf_resnet", "transformers", "vision", _hf(
            "ResNetModel", "ResNetConfig", dict(embedding_size=32, hidden_sizes=[32, 64, 128, 256],
                                                depths=[1, 1, 1, 1], layer_type="basic"),
            _pixels(128), ("pixel_values",))),
        ModelSpec("hf_swin", "transformers", "vision", _hf(
            "SwinModel", "SwinConfig", dict(image_size=128, patch_size=4, window_size=4, embed_dim=32,
                                            depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
            _pixels(128), ("pixel_values",))),
        ModelSpec("hf_dinov2", "transformers", "vision", _hf(
            "Dinov2Model", "Dinov2Config", dict(image_size=126, patch_size=14, hidden_size=128, num_hidden_layers=2,
                                                num_attention_heads=2, intermediate_size=256),
            _pixels(126), ("pixel_values",))),
    ]
    return s


SUITE: dict[str, ModelSpec] = {m.name: m for m in _suite()}

"""Rebuild the small tokenizer shipped in ``adapters/guidellm/data/tokenizer``.

GuideLLM needs a Hugging Face tokenizer to cut synthetic prompts to a token count and to count tokens when the
server does not report usage; the usual source (the model's repository on the Hub) cannot be reached offline.
This is a byte-level BPE (2,048 tokens, GPT-2 style pre-tokenisation) trained on Faker's English text, the same
generator GuideLLM's ``synthetic_text`` data uses, so a synthetic prompt of N tokens is about N real tokens for
a typical English tokenizer. Run it in the GuideLLM environment (it has ``tokenizers``, ``transformers`` and
``faker``): ``python adapters/guidellm/data/build_tokenizer.py``. The output is deterministic.
"""

from __future__ import annotations

from pathlib import Path

from faker import Faker  # type: ignore[import-not-found, unused-ignore]
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # type: ignore[import-not-found, unused-ignore]
from transformers import PreTrainedTokenizerFast  # type: ignore[import-not-found, unused-ignore]

VOCAB_SIZE = 2048
TARGET = Path(__file__).resolve().parent / "tokenizer"


def corpus(lines: int = 20_000) -> list[str]:
    faker = Faker("en_US")
    faker.seed_instance(1234)
    return [faker.text(max_nb_chars=400) for _ in range(lines)]


def main() -> None:
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    fast.model_max_length = 1_000_000
    fast.save_pretrained(TARGET)


if __name__ == "__main__":
    main()

"""Text and sequence tools: vocabularies, windows of long sequences, a recurrent language model,
sampling, and an offline English corpus (the standard library's docstrings).

    from deepwise.text import Vocab, LanguageModel, next_token_windows, sample, load_stdlib_docstrings
    text = load_stdlib_docstrings()
    vocab = Vocab.build(text, level="char")
    x, y = next_token_windows(vocab.encode(text), seq_len=64)
"""

from deepwise.text.corpus import ASCII_ALPHABET, STDLIB_MODULES, load_stdlib_docstrings, to_ascii
from deepwise.text.models import LanguageModel
from deepwise.text.sampling import sample, sample_next
from deepwise.text.vocab import Vocab
from deepwise.text.windows import SequenceDataset, next_token_windows, pad_sequences, sliding_windows

__all__ = [
    "ASCII_ALPHABET", "STDLIB_MODULES", "LanguageModel", "SequenceDataset", "Vocab", "load_stdlib_docstrings",
    "next_token_windows", "pad_sequences", "sample", "sample_next", "sliding_windows", "to_ascii",
]

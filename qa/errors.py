"""Every error the library raises on purpose: one base class, each message says what to do."""


class QAError(Exception):
    """Base class: the message is one clear line a person can act on."""


class CorpusError(QAError):
    """The corpus folder is missing, empty, or holds no readable document."""


class IndexNotFoundError(QAError):
    """No index at the given folder."""


class IndexCorruptError(QAError):
    """Index files are unreadable, truncated, or do not match their manifest."""


class StaleIndexError(QAError):
    """The index no longer matches the corpus, the model or the chunker settings."""


class ModelError(QAError):
    """The embedding model cannot be loaded offline."""


class InvalidQuestionError(QAError):
    """The question is empty, too long, or not text."""

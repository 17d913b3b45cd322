"""Errors that the command line shows to the user as one clear message, without a traceback."""


class VaegmmError(Exception):
    """A problem the user can fix: bad input, a foreign file, an unwritable output.

    The message always names the file, what was expected, what was found and what to do.
    """


class DataError(VaegmmError, ValueError):
    """An input data file (NPZ, IDX, labels) is missing, unreadable or malformed."""


class ModelFileError(VaegmmError, ValueError):
    """A ``vae.pth`` or ``gmm_params.pkl`` is corrupt, foreign or does not fit the data."""


class ConfigError(VaegmmError, ValueError):
    """A setting is out of range or settings contradict each other."""


class OutputError(VaegmmError, OSError):
    """An output file cannot be written where the user asked."""


class DegenerateFitWarning(UserWarning):
    """EM met a degenerate situation (an emptied component, a singular covariance) and coped."""


class DataWarning(UserWarning):
    """Input data that load but look unlike what the user probably meant (e.g. pixels on another scale)."""


class UnsettledFitWarning(UserWarning):
    """The few-label fit's candidate fits disagree on many images: the classes overlap in the latent space,
    so new images will often be misclassified (:func:`vaegmm.candidates.unsettled_advice`)."""

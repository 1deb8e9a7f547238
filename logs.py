"""What the libraries underneath may print: their log lines and warnings concern the user only
when asked (`fer-mine --verbose`). Called by the CLI, and by each pipeline worker (a process of
its own under `--workers`), so that a photo with damaged EXIF never prints Pillow's warning."""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Beam's runner chatter, absl's (through Beam's extras) and Pillow's decoder notes
LIBRARY_LOGGERS = ("apache_beam", "absl", "PIL")
# Lines Beam logs on the root logger on every machine, which concern no user: Google Cloud
# extras missing, and memory monitoring on platforms without the `resource` module
ROOT_NOISE = ("apitools not found", "Resource module is not available")


def _not_noise(record: logging.LogRecord) -> bool:
    return not any(n in record.getMessage() for n in ROOT_NOISE)


def quiet_libraries(verbose: bool = False) -> None:
    """Library log lines (below errors) and warnings out of the output, unless `verbose`."""
    if verbose:
        return
    # OpenCV's own C++ log (OpenCV 5's DNN engine warns on every YuNet load that it has no
    # target to set): read from the environment when cv2 is first imported, and set again
    # where it already is
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    # torch's own C++ warnings (int8 kernels called deprecated, from inside TorchScript): read
    # when torch is first imported, which the commands do after this
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    if "cv2" in sys.modules:
        from cv2.utils import logging as cv_logging  # OpenCV 4 and 5

        cv_logging.setLogLevel(cv_logging.LOG_LEVEL_ERROR)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger().addFilter(_not_noise)  # the same filter once, however often called
    for module in LIBRARY_LOGGERS:
        warnings.filterwarnings("ignore", module=module)

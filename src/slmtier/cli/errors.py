"""User mistakes end the command with one message and exit code 2, not a traceback.

Exit codes of every slmtier command: 0 done; 2 a user mistake (bad config, data, run directory), with a
message that says what to fix; 3 a finished run that reached no verdict (reports written); 1 a bug (traceback).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException, SearchPathException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from slmtier.config import describe_unknown_key
from slmtier.errors import SlmtierError

USER_MISTAKE = 2  # the exit code of SlmtierError and of Hydra's composition errors
# Hydra's errors about the command line and the config files: a key or group option that does not exist, a
# value of the wrong type, an override it cannot parse, a missing --config-dir. (Not InstantiationException:
# a _target_ that fails to import is slmtier's bug.)
HYDRA_USER_MISTAKES = (ConfigCompositionException, OverrideParseException, SearchPathException)


def name_and_number(value: str, option: str, form: str) -> tuple[str, float]:
    """An option's NAME=NUMBER value (`--label-shift refund=4`), or a user mistake saying the form expected."""
    name, _, number = value.rpartition("=")
    try:
        return name, float(number)
    except ValueError as err:
        raise SlmtierError(f"{option} {value!r}: {form}") from err


@contextlib.contextmanager
def exit_on_user_error():
    try:
        yield
    except SlmtierError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


@contextlib.contextmanager
def exit_on_config_error():
    """Hydra's errors about the config end the command like a SlmtierError (exit code 2, one message, a
    "did you mean" where a known key or option is close), instead of Hydra's exit code 1 and its advice to set
    HYDRA_FULL_ERROR. Hydra prints and exits itself unless HYDRA_FULL_ERROR is set, so it is set for the call;
    a user who sets it gets Hydra's full stack traces, as Hydra documents."""
    if os.environ.get("HYDRA_FULL_ERROR"):
        yield
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except HYDRA_USER_MISTAKES as err:
        print(f"error: {describe_config_error(err)}", file=sys.stderr)
        sys.exit(USER_MISTAKE)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def describe_config_error(err: Exception) -> str:
    """One message for a Hydra composition error: what is wrong, where, and the closest known name."""
    if isinstance(err, MissingConfigException) and err.options and err.missing_cfg_file:
        return describe_missing_option(err.missing_cfg_file, err.options)
    unchosen = re.match(r"You must specify '([^']+)'", str(err))  # a group left ??? (`recipe: ???`)
    if unchosen:
        group, options = unchosen.group(1), re.findall(r"^\t(\S+)$", str(err), re.MULTILINE)
        return f"say which {group} to use: add {group}=NAME to the command ({group} options: {', '.join(options)})"
    if isinstance(err, OverrideParseException):
        grammar = "; ".join(line.strip() for line in err.message.splitlines() if line.strip())  # and the docs' link
        return f"cannot read the override {err.override!r}: {grammar}"
    # OmegaConf's error is the cause of an override's failure, the context of a config file's.
    cause = err.__cause__ or err.__context__
    where = re.match(r"In '([^']+)': ", str(err))  # the config file (a recipe) that holds the mistake
    prefix = f"{where.group(1)}: " if where else ""
    if (
        isinstance(cause, (ConfigKeyError, ConfigAttributeError))
        and cause.key is not None
        and cause.parent_node is not None
    ):
        override = re.match(r"Could not override '([^']+)'", str(err))  # `dta.validation_holdout`: `dta` fails
        overridden, full_key = override.group(1) if override else "", str(cause.full_key)
        rest = overridden[len(full_key) :] if overridden.startswith(full_key) else ""
        return prefix + describe_unknown_key(full_key, list(cause.parent_node.keys()), rest=rest)
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        return f"{prefix}{cause.full_key}: {first_line(str(cause.msg))}"
    return str(err).split("\nConfig search path:")[0]  # Hydra's own message, without its search-path listing


def describe_missing_option(missing_cfg_file: str, options: list[str]) -> str:
    """`model/smolm2_135m` -> "... did you mean model=smollm2_135m?", and the group's options."""
    group, _, name = missing_cfg_file.rpartition("/")
    message = f"{group} has no option {name!r}"
    close = difflib.get_close_matches(name, options, n=1)
    hint = f"; did you mean {group}={close[0]}?" if close else ""
    return f"{message}{hint} ({group} options: {', '.join(options)})"


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else text

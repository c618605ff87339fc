"""Exercise checks that speak to learners: one line, ✅ or ❌, a hint, never a traceback.

Every exercise's check cell calls :func:`answer`, which tells apart the four things a learner can have done:

* **unanswered** — the name is not defined yet (or still ``...``): ``❌ macro_auc has no answer yet — <hint>``;
* **wrong type** — ``❌ macro_auc should be a number, not str — <hint>``;
* **wrong value** — ``❌ macro_auc: 0.61 is below 0.79 — <hint>``;
* **right** — ``✅ macro_auc: 0.7980 ≥ 0.79``.

Why it prints rather than raises: "Run All" must carry a learner past an exercise they have not done yet, to every
later prompt (the lab header says so); a raised error would stop the run there and print a traceback about our
internals instead of the hint. The solutions are held to account differently: their runs in CI fail on any ❌ line
(``tests/notebooks``). :func:`answer` also returns whether the answer is right, for code that wants to branch.

The other checks (:func:`check_close`, :func:`check_equal`, :func:`check_same_frame`) verify the lab itself, not an
exercise (the job learns what ``xgboost.train`` learns …): they raise :class:`CheckFailed`, which IPython shows as
its one-line message, without a traceback.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd


class CheckFailed(AssertionError):
    """A lab's own verification failed; the message is the one line the learner sees.

    ``_render_traceback_`` is IPython's hook for exceptions that format themselves: the cell's error output is that
    one line, not a traceback through this module. The cell still fails, so "Run All" stops at a lab that is broken.
    """

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def _require(ok: bool, bad: str) -> None:
    """Raise :class:`CheckFailed` with the hint ``bad`` unless ``ok``."""
    __tracebackhide__ = True  # pytest hides this frame; IPython shows the message alone (_render_traceback_)
    if not ok:
        raise CheckFailed("❌ " + bad)


def _report(ok: bool, good: str, bad: str) -> None:
    """Print ``good`` if ``ok``, else raise :class:`CheckFailed` with ``bad``."""
    __tracebackhide__ = True
    _require(ok, bad)
    print("✅ " + good)


# --------------------------------------------------------------------------------------------------------------
# The exercise check: four outcomes

NUMBER: tuple[type, ...] = (numbers.Real,)
"""``expected`` for a number (Python or NumPy int or float; not bool)."""

_TYPE_WORDS = {numbers.Real: "a number", str: "a string", bytes: "bytes", dict: "a dict", list: "a list",
               pd.DataFrame: "a DataFrame", pd.Series: "a Series", int: "an integer"}


def _type_words(expected: type | tuple[type, ...]) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_TYPE_WORDS.get(kind, kind.__name__) for kind in kinds)


def _short(value: Any) -> str:
    """A value as a learner would recognise it, in one short line."""
    if isinstance(value, float | np.floating):
        return f"{float(value):.4f}"
    if isinstance(value, pd.DataFrame):
        return f"a DataFrame of {value.shape[0]:,} rows × {value.shape[1]} columns"
    if isinstance(value, pd.Series):
        return f"a Series of {len(value):,} values"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _say(mark: str, text: str) -> None:
    print(f"{mark} " + " ".join(text.split()))  # one line, whatever the messages hold


class Verdict:
    """What :func:`answer` found: true when the answer is right. Jupyter displays nothing for it.

    Why not a plain ``bool``: a check cell usually ends with ``checks.answer(...)``, and Jupyter would echo
    ``True``/``False`` under the ✅/❌ line that already said it all.
    """

    __slots__ = ("right",)

    def __init__(self, right: bool) -> None:
        self.right = right

    def __bool__(self) -> bool:
        return self.right

    def __repr__(self) -> str:
        return f"Verdict(right={self.right})"

    def _ipython_display_(self) -> None:
        """Show nothing: the check's one printed line is the whole message."""


def answer(name: str, expected: type | tuple[type, ...], judge: Callable[[Any], str | None], hint: str, *,
           get: Callable[[], Any] | None = None, shows: Callable[[Any], str] = _short,
           namespace: Mapping[str, Any] | None = None) -> Verdict:
    """Check one exercise's answer and print one line: unanswered, wrong type, wrong value (each ❌ + ``hint``) or ✅.

    ``name`` is what the learner was asked to set: a variable (``"macro_auc"``) or an expression over the
    notebook's variables (``'features["not_working"]'``), evaluated in the calling cell's namespace (or
    ``namespace``). ``get`` replaces that lookup for answers that live elsewhere (an object in S3); ``name`` then
    only names it. Whatever goes wrong while fetching the answer (a ``NameError``, a ``KeyError``, ``NoSuchKey``)
    means "not answered yet", and so does ``...``.

    ``judge(value)`` returns ``None`` when the value is right, else a few words on what is wrong ("is below
    0.79"); an exception inside it counts as a wrong value. ``shows(value)`` is how the value appears in the ✅
    line. Returns whether the answer is right (a :class:`Verdict`, true when right); never raises.
    """
    if get is None:
        scope = dict(namespace) if namespace is not None else _caller_namespace()

        def get() -> Any:
            return eval(name, scope)  # noqa: S307 - the learner's own expression, in the learner's own kernel

    try:
        value = get()
    except Exception as exc:  # noqa: BLE001 - any failure to find the answer means it is not there yet
        _say("❌", f"{name} has no answer yet ({type(exc).__name__}) — {hint}")
        return Verdict(False)
    if value is Ellipsis:
        _say("❌", f"{name} has no answer yet — {hint}")
        return Verdict(False)
    if not isinstance(value, expected) or isinstance(value, bool) and bool not in _as_tuple(expected):
        _say("❌", f"{name} should be {_type_words(expected)}, not {type(value).__name__} — {hint}")
        return Verdict(False)
    try:
        wrong = judge(value)
    except Exception as exc:  # noqa: BLE001 - a value the judge cannot even handle is a wrong value
        wrong = f"could not be checked ({type(exc).__name__}: {exc})"
    if wrong:
        _say("❌", f"{name}: {wrong} — {hint}")
        return Verdict(False)
    _say("✅", f"{name}: {shows(value)}")
    return Verdict(True)


def _as_tuple(expected: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def _caller_namespace() -> dict[str, Any]:
    """The globals and locals of the cell that called :func:`answer` (two frames up)."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back  # type: ignore[union-attr]
        return {**caller.f_globals, **caller.f_locals}  # type: ignore[union-attr]
    finally:
        del frame


# Judges the labs share: each returns None when right, else what is wrong, in a few words.


def at_least(bar: float) -> Callable[[Any], str | None]:
    """A number (an AUC …) that must reach ``bar``."""
    return lambda value: None if np.isfinite(value) and value >= bar else f"{_short(value)} is below {bar}"


def close_to(reference: float, tolerance: float) -> Callable[[Any], str | None]:
    """A number that must match ``reference`` within ``tolerance``."""
    return lambda value: (None if abs(float(value) - reference) <= tolerance
                          else f"{_short(value)} is not within {tolerance} of {_short(reference)}")


def equal_to(expected: Any) -> Callable[[Any], str | None]:
    """A name, code or count that must be exactly ``expected``."""
    return lambda value: None if value == expected else f"{value!r} is not the expected value"


def one_of(options: Collection[Any]) -> Callable[[Any], str | None]:
    """A choice that must be one of ``options``."""
    return lambda value: None if value in options else f"{value!r} is not one of {list(options)}"


def has_rows(count: int) -> Callable[[Any], str | None]:
    """A table that must have ``count`` rows."""
    return lambda frame: None if len(frame) == count else f"has {len(frame)} rows, not {count}"


def same_frame(expected: pd.DataFrame) -> Callable[[Any], str | None]:
    """A DataFrame that must equal ``expected``: same columns in the same order, same values."""

    def judge(frame: pd.DataFrame) -> str | None:
        if frame.shape != expected.shape:
            return f"its shape is {frame.shape}, expected {expected.shape}"
        if list(frame.columns) != list(expected.columns):
            return "its columns differ (or are in another order)"
        return None if frame.equals(expected) else "same shape and columns, but some values differ"

    return judge


def indicator_of(expected: pd.Series) -> Callable[[Any], str | None]:
    """A 0/1 column that must be 1 exactly where ``expected`` is true."""

    def judge(values: pd.Series) -> str | None:
        if not set(pd.unique(values)) <= {0, 1}:
            return "should hold only 0 and 1 (use .astype(int))"
        wrong = int((values.astype(int).to_numpy() != expected.astype(int).to_numpy()).sum())
        return f"differs from the expected definition in {wrong:,} rows" if wrong else None

    return judge


def without_columns(columns: Collection[str]) -> Callable[[Any], str | None]:
    """A DataFrame from which ``columns`` must be gone."""

    def judge(frame: pd.DataFrame) -> str | None:
        left = [c for c in columns if c in frame.columns]
        return f"still has {', '.join(left)}" if left else None

    return judge


# --------------------------------------------------------------------------------------------------------------
# Verifications of the lab itself (not exercises): they raise, so a broken lab stops where it broke


def check_close(value: float, reference: float, tolerance: float, what: str) -> None:
    """A number matches a reference computed another way (the job vs in-process, batch vs endpoint …)."""
    __tracebackhide__ = True
    _report(abs(value - reference) <= tolerance, f"{what}: {value:.4f} matches {reference:.4f} (±{tolerance}).",
            f"{what}: {value:.4f} is not within {tolerance} of {reference:.4f}.")


def check_equal(value: Any, expected: Any, what: str, hint: str = "") -> None:
    """A name, code, count or shape is exactly the one expected; ``hint`` says why it should be."""
    __tracebackhide__ = True
    _report(bool(value == expected), f"{what}: {value!r}.",
            f"{what} is {value!r}; expected {expected!r}." + (f" {hint}" if hint else ""))

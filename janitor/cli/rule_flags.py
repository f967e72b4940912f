"""The retention-rule options of ``prune`` and ``watch``, derived from the rules declared in
``janitor.domain.rules``: a flag per rule (and its switch, ``--remove-incomplete``), with
the rule's ``--help`` line. Typer reads a command's options from its signature each time it
builds the command line, and ``rule_options`` computes that signature from the registry
then, so a rule registered later (a test's dummy rule) is an option too."""

import functools
import inspect
from typing import Annotated, Any

import typer

from janitor.domain import rules


def option(r: rules.Rule) -> Any:
    """The typed option of rule ``r`` (text for typer: the rule's parser reads it)."""
    if r.parser == "bool":  # a flag; absent (None) leaves the rule to janitor.toml
        return Annotated[bool | None, typer.Option(r.flag, help=r.help, show_default=False)]
    return Annotated[
        str | None, typer.Option(r.flag, help=r.help, metavar=r.metavar, show_default=False)
    ]


def _parameters() -> list[inspect.Parameter]:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    out = []
    for r in rules.rules():
        if r.switch is not None:
            switch = Annotated[bool, typer.Option(r.switch.flag, help=r.switch.help)]
            out.append(inspect.Parameter(r.switch.keyword, kind, default=False, annotation=switch))
        out.append(inspect.Parameter(r.keyword, kind, default=None, annotation=option(r)))
    return out


class _WithRules:
    """A command that takes the rule options and receives them parsed, as one typed
    ``rules: Overrides`` (None where not given: the config files may say)."""

    def __init__(self, fn: Any) -> None:
        functools.update_wrapper(self, fn)
        self.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k != "rules"}
        self._fn = fn

    @property
    def __signature__(self) -> inspect.Signature:  # read by typer when it builds the command
        sig = inspect.signature(self._fn, eval_str=True)
        params = [p for name, p in sig.parameters.items() if name != "rules"]
        return sig.replace(parameters=[params[0], *_parameters(), *params[1:]])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from janitor.usecases.prune import parse_overrides

        names = [p.name for p in _parameters()]
        given = {name: kwargs.pop(name) for name in names if name in kwargs}
        return self._fn(*args, rules=parse_overrides(**given), **kwargs)


def rule_options(fn: Any) -> Any:
    """Give a command (prune, watch) the retention-rule options, after its first argument."""
    return _WithRules(fn)


# for the commands that take these rules' options alone (scan --plot, finalize)
KeepBest, Metric, Mode = option(rules.KEEP_BEST), option(rules.METRIC), option(rules.MODE)

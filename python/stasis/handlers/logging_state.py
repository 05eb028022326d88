"""logging: loggers by name, and the logging module's configuration (levels, handlers with their
formatters, filters and streams, flags) as module state."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

def _save_logging_module(module: Any) -> Any:
    """Levels, handlers (with their formatters, filters and streams) and flags of the root logger
    and of every named logger: what logging.basicConfig / dictConfig set up."""
    def logger_state(lg: Any) -> Tuple:
        return (lg.level, lg.propagate, lg.disabled, list(lg.handlers), list(lg.filters))
    manager = module.root.manager
    loggers = {name: logger_state(lg) for name, lg in list(manager.loggerDict.items())
               if isinstance(lg, module.Logger)}
    return (logger_state(module.root), loggers, manager.disable)


def _load_logging_module(module: Any, state: Any) -> None:
    root_state, loggers, disable = state
    def apply(lg: Any, st: Tuple) -> None:
        lg.level, lg.propagate, lg.disabled, handlers, filters = st
        lg.handlers[:] = handlers
        lg.filters[:] = filters
    apply(module.root, root_state)
    for name, st in loggers.items():
        apply(module.getLogger(name), st)
    module.root.manager.disable = disable
    module.root.manager._clear_cache()
    for handlers in [root_state[3]] + [st[3] for st in loggers.values()]:
        for h in handlers:  # flushed and closed at exit, like handlers made in this process
            module._addHandlerRef(h)


def _save_logger(logger: Any) -> Optional[str]:
    import logging
    return None if logger is logging.root else logger.name


def _load_logger(name: Optional[str]) -> Any:
    """The logger of that name in this process (its configuration is the logging module's
    state, restored with it)."""
    import logging
    if name is not None and type(name) is not str:
        raise TypeError("a logger's name is not a str")
    return logging.getLogger(name)


def logging_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import logging
    return {t: ("stasis.logger", _save_logger, _load_logger) for t in (logging.Logger, logging.RootLogger)}


def module_states() -> Dict[str, Tuple[Callable, Callable]]:
    return {"logging": (_save_logging_module, _load_logging_module)}

"""stasis.compiler_hooks: the resumable-code rewriter, its import hook and cache, `stasis run`.

Modules: `rewriter` (AST -> resumable form; its parts `sites`, `scopes`, `lowering`),
`resume_points` (resume-point tables of compiled code), `bytecode` (CPython 3.11 bytecode, line and
exception tables), `listing` (`stasis rewrite`), `cache` (rewritten-code cache), `hook`
(meta-path finder/loader, module selection), `runner` (run a script or module under the hook).
Pure Python; see README.md.
Importing the package imports none of them: `stasis run` needs only `runner`, `hook` and `cache`
while the rewritten code comes from the cache, and start-up is paid by every chain step.
"""
from __future__ import annotations

__all__ = ['REWRITER_VERSION', 'format_resumable', 'rewrite_module', 'resume_table', 'Row']

_WHERE = {'format_resumable': 'listing', 'REWRITER_VERSION': 'rewriter', 'rewrite_module': 'rewriter',
          'resume_table': 'resume_points', 'Row': 'resume_points'}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f'{__name__}.{_WHERE[name]}'), name)

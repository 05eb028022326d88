"""stasis.compiler_hooks: the resumable-code rewriter, its import hook and cache, `stasis run`.

Modules: `rewriter` (AST -> resumable form; its parts `sites`, `scopes`, `lowering`),
`resume_points` (resume-point tables of compiled code), `bytecode` (CPython 3.11 bytecode, line and
exception tables), `listing` (`stasis rewrite`), `cache` (rewritten-code cache), `hook`
(meta-path finder/loader, module selection), `runner` (run a script or module under the hook).
Pure Python; see README.md.
"""
from .listing import format_resumable
from .rewriter import REWRITER_VERSION, rewrite_module
from .resume_points import Row, resume_table

__all__ = ['REWRITER_VERSION', 'format_resumable', 'rewrite_module', 'resume_table', 'Row']

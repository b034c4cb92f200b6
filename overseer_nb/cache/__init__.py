"""Caching (SPEC §13): fingerprints of what a job's result depends on, and why a job ran or was reused.

Computed in the kernel from the handlers as they are, the run's args and the
content digests of inputs; the journal keeps each job's fingerprint and finds
an earlier finished job with the same one. Nothing here runs a job.
"""

from .codeprint import CodeDigests, code_digest
from .fingerprint import HandlerPrint, Uncacheable, digest_args, digest_bytes, digest_value, handler_print
from .keys import fingerprint_of, input_digest, job_parts, why_it_ran

__all__ = [
    "HandlerPrint",
    "Uncacheable",
    "handler_print",
    "digest_args",
    "digest_bytes",
    "digest_value",
    "job_parts",
    "fingerprint_of",
    "input_digest",
    "why_it_ran",
    "code_digest",
    "CodeDigests",
]

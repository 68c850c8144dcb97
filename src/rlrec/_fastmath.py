"""numba helpers shared by rlrec's CPU kernels (imported only when numba is installed).

``fast``: the ``njit`` options of every kernel (fast-math, no bounds checks, numpy's error model,
numba's on-disk cache). ``exp_parts``: a vectorisable float32 ``exp`` as mantissa and exponent bits;
``exp32``: the same ``exp`` as one float32 (the bits reinterpreted in a register, so a loop that
computes it and uses it stays one vectorised loop). ``wide_vectors``: lets LLVM vectorise the
calling function with the CPU's widest vectors.

numba's cache keys a kernel on its own file only: after editing this module, clear the callers'
``__pycache__/*.nbi|*.nbc`` files (or touch the callers) so they are recompiled.
"""

# mypy: ignore-errors
# (numba's decorators are untyped)

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

fast = {"fastmath": True, "boundscheck": False, "error_model": "numpy", "cache": True}


EXP_CLAMP = (-87.0, 88.0)
"""``exp``'s argument is clamped to this range (``2^n`` stays a normal float32)."""
LN2_PARTS = (0.693359375, -2.12194440e-4)
"""``ln 2`` in two parts (Cody–Waite): the first has few mantissa bits, so ``n · ln2_hi`` is exact."""
EXP_POLY = (
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
)
"""Cephes' ``expf`` coefficients, highest degree first: ``exp(y) ≈ 1 + y + y² P(y)`` on ``|y| ≤ ln2/2``."""


@nb.njit(inline="always", **fast)
def exp_parts(x: float) -> tuple[float, int]:
    """``exp(x)`` for ``x ≤ 80`` as a mantissa polynomial and the bits of ``2^n`` (the caller
    multiplies them through an int32 → float32 view, which keeps the loops vectorised).
    Cody–Waite reduction ``x = n ln2 + y``, ``|y| ≤ ln2/2``, then Cephes' ``expf`` polynomial;
    ``x < −87`` gives ``exp(−87)``."""
    x = min(max(x, np.float32(EXP_CLAMP[0])), np.float32(EXP_CLAMP[1]))
    n = np.int32(x * np.float32(1.44269504) + np.float32(128.5)) - np.int32(128)  # round
    z = np.float32(n)
    y = x - z * np.float32(LN2_PARTS[0]) - z * np.float32(LN2_PARTS[1])
    p = np.float32(EXP_POLY[0])  # written out: a loop over the tuple stops numba vectorising
    p = p * y + np.float32(EXP_POLY[1])
    p = p * y + np.float32(EXP_POLY[2])
    p = p * y + np.float32(EXP_POLY[3])
    p = p * y + np.float32(EXP_POLY[4])
    p = p * y + np.float32(EXP_POLY[5])
    p = p * y * y + y + np.float32(1.0)
    return p, (n + np.int32(127)) << np.int32(23)


@intrinsic
def float_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of the integer ``bits`` (LLVM ``bitcast``)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        word = args[0]
        if bits.bitwidth != 32:
            word = builder.trunc(word, ir.IntType(32))
        return builder.bitcast(word, ir.FloatType())

    return types.float32(bits), codegen


@nb.njit(inline="always", **fast)
def exp32(x: float) -> float:
    """``exp(x)`` in float32 for ``x ≤ 80`` (:func:`exp_parts`, multiplied out)."""
    p, bits = exp_parts(x)
    return np.float32(p) * float_from_bits(bits)


@intrinsic
def wide_vectors(typingctx):
    """Call at the top of a kernel (inside a ``prange`` loop: the loop body is its own function) to
    let LLVM vectorise it with the widest vectors the CPU has.

    LLVM's tuning for Intel cores with AVX-512 prefers 256-bit vectors (wide ones lower the clock
    in code that uses them sparsely); for rlrec's kernels, which are vector arithmetic end to end,
    512-bit vectors are faster (``benchmarks/README.md``, "Simulator throughput"). The function
    attribute ``"prefer-vector-width"="512"`` overrides the preference for this function only;
    on a CPU without AVX-512 it has no effect. (llvmlite's attribute set accepts only the
    attributes it knows, so the string attribute is added to the set directly.)"""
    sig = types.void()

    def codegen(context, builder, signature, args):
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return sig, codegen

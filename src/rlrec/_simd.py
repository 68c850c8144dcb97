"""Explicit vectors of 16 float32 lanes for rlrec's numba kernels (imported only with numba).

Why: numba vectorises only innermost loops, and it keeps a loop's running sums in memory whenever
the loop touches more than a few arrays (LLVM cannot rule out that they overlap). A kernel that
needs many sums to stay in registers across an outer loop — the history attention's 16 rows × 8
columns, updated key after key — therefore writes its vectors out: a :data:`f32x16` value is one
LLVM ``<16 x float>`` SSA value (one AVX-512 register, two AVX2 ones, four NEON ones), so it lives
in registers and never aliases anything.

The operations: :func:`load` / :func:`store` of 16 consecutive elements along an array's last axis
(``arr[idx]`` … ``arr[idx + 15]``, ``idx`` an index or a tuple of them), :func:`splat`, ``+ − ×``
between vectors or a vector and a scalar (the scalar is broadcast), :func:`vmax`, :func:`above`
(1.0 where ``a > b``) and :func:`exp` — the same float32 ``exp`` as :func:`rlrec._fastmath.exp32`
lane by lane (the same operations; at most 1 ulp apart where LLVM fuses a multiply-add differently). Arithmetic carries LLVM's ``fast`` flag (FMA contraction, as in the
kernels' ``fastmath``). The caller keeps indices in bounds: nothing is checked.

numba's cache keys a kernel on its own file only: after editing this module, clear the callers'
``__pycache__/*.nbi|*.nbc`` files (or touch the callers) so they are recompiled.
"""

# mypy: ignore-errors
# (numba's extension API is untyped)

from __future__ import annotations

import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

from rlrec._fastmath import EXP_CLAMP, EXP_POLY, LN2_PARTS

WIDTH = 16
"""Lanes of a vector."""
_FLOAT = ir.FloatType()
_VEC = ir.VectorType(_FLOAT, WIDTH)
_INT = ir.IntType(32)
_IVEC = ir.VectorType(_INT, WIDTH)
_FAST = ("fast",)
_CONTRACT = ("contract",)  # exp: FMAs allowed, no reassociation (it would undo Cody–Waite)


class F32x16(types.Type):
    """numba's type of a vector of 16 float32 lanes."""

    def __init__(self) -> None:
        super().__init__(name="f32x16")


f32x16 = F32x16()


@register_model(F32x16)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _lanes_pointer(context, builder, array_type, array, index_type, index):
    """``&array[index]`` as a pointer to 16 floats."""
    arr = context.make_array(array_type)(context, builder, array)
    shape = cgutils.unpack_tuple(builder, arr.shape, array_type.ndim)
    strides = cgutils.unpack_tuple(builder, arr.strides, array_type.ndim)
    if isinstance(index_type, types.BaseTuple):
        indices = cgutils.unpack_tuple(builder, index, len(index_type))
        index_types = index_type.types
    else:
        indices, index_types = [index], [index_type]
    indices = [
        context.cast(builder, v, t, types.intp) for v, t in zip(indices, index_types, strict=True)
    ]
    ptr = cgutils.get_item_pointer2(
        context, builder, arr.data, shape, strides, array_type.layout, indices
    )
    return builder.bitcast(ptr, _VEC.as_pointer())


def _is_float32_array(array_type) -> bool:
    return isinstance(array_type, types.Array) and array_type.dtype == types.float32


@intrinsic
def load(typingctx, array, index):
    """The 16 float32 from ``array[index]`` on along the last axis."""
    if not _is_float32_array(array):
        return None

    def codegen(context, builder, sig, args):
        ptr = _lanes_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        return builder.load(ptr, align=4)

    return f32x16(array, index), codegen


@intrinsic
def store(typingctx, array, index, value):
    """Write ``value``'s 16 lanes to ``array[index]`` on along the last axis."""
    if not _is_float32_array(array) or value != f32x16:
        return None

    def codegen(context, builder, sig, args):
        ptr = _lanes_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        builder.store(args[2], ptr, align=4)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


def _constant(value: float) -> ir.Constant:
    return ir.Constant(_VEC, [value] * WIDTH)


def _broadcast(context, builder, value_type, value):
    """``value`` (a vector, or a number broadcast to every lane)."""
    if value_type == f32x16:
        return value
    x = context.cast(builder, value, value_type, types.float32)
    v = builder.insert_element(ir.Constant(_VEC, ir.Undefined), x, ir.Constant(_INT, 0))
    return builder.shuffle_vector(
        v, ir.Constant(_VEC, ir.Undefined), ir.Constant(_IVEC, [0] * WIDTH)
    )


@intrinsic
def splat(typingctx, value):
    """A vector with ``value`` in every lane."""
    if not isinstance(value, types.Number):
        return None

    def codegen(context, builder, sig, args):
        return _broadcast(context, builder, sig.args[0], args[0])

    return f32x16(value), codegen


def _arithmetic(instruction: str):
    """``a op b`` lane by lane, either operand a number (broadcast)."""

    @intrinsic
    def op(typingctx, a, b):
        if not all(t == f32x16 or isinstance(t, types.Number) for t in (a, b)):
            return None

        def codegen(context, builder, sig, args):
            x = _broadcast(context, builder, sig.args[0], args[0])
            y = _broadcast(context, builder, sig.args[1], args[1])
            return getattr(builder, instruction)(x, y, flags=_FAST)

        return f32x16(a, b), codegen

    return op


_add, _sub, _mul = _arithmetic("fadd"), _arithmetic("fsub"), _arithmetic("fmul")
_div = _arithmetic("fdiv")


@overload(operator.add)
def _add_overload(a, b):
    if a == f32x16 or b == f32x16:
        return lambda a, b: _add(a, b)
    return None


@overload(operator.sub)
def _sub_overload(a, b):
    if a == f32x16 or b == f32x16:
        return lambda a, b: _sub(a, b)
    return None


@overload(operator.mul)
def _mul_overload(a, b):
    if a == f32x16 or b == f32x16:
        return lambda a, b: _mul(a, b)
    return None


@overload(operator.truediv)
def _div_overload(a, b):
    if a == f32x16 or b == f32x16:
        return lambda a, b: _div(a, b)
    return None


@intrinsic
def select(typingctx, cond, a, b):
    """``a`` in the lanes where ``cond > 0``, ``b`` elsewhere (either a number: broadcast)."""
    if cond != f32x16 or not all(t == f32x16 or isinstance(t, types.Number) for t in (a, b)):
        return None

    def codegen(context, builder, sig, args):
        x = _broadcast(context, builder, sig.args[1], args[1])
        y = _broadcast(context, builder, sig.args[2], args[2])
        return builder.select(builder.fcmp_ordered(">", args[0], _constant(0.0)), x, y)

    return f32x16(cond, a, b), codegen


@intrinsic
def vmax(typingctx, a, b):
    """The larger of ``a`` and ``b``, lane by lane."""
    if a != f32x16 or b != f32x16:
        return None

    def codegen(context, builder, sig, args):
        x, y = args
        return builder.select(builder.fcmp_ordered(">", x, y), x, y)

    return f32x16(a, b), codegen


def _fold(builder, v, combine):
    """Lane 0 of ``v`` combined with itself rotated by 8, 4, 2 and 1 lanes: all 16 lanes combined."""
    width = WIDTH
    while width > 1:
        width //= 2
        turn = ir.Constant(_IVEC, [(i + width) % WIDTH for i in range(WIDTH)])
        v = combine(v, builder.shuffle_vector(v, v, turn))
    return builder.extract_element(v, ir.Constant(_INT, 0))


@intrinsic
def hmax(typingctx, a):
    """The largest of ``a``'s lanes (a float32)."""
    if a != f32x16:
        return None

    def codegen(context, builder, sig, args):
        def larger(x, y):
            return builder.select(builder.fcmp_ordered(">", x, y), x, y)

        return _fold(builder, args[0], larger)

    return types.float32(a), codegen


@intrinsic
def hsum(typingctx, a):
    """The sum of ``a``'s lanes (a float32; pairwise, in a fixed order)."""
    if a != f32x16:
        return None

    def codegen(context, builder, sig, args):
        return _fold(builder, args[0], lambda x, y: builder.fadd(x, y, flags=_FAST))

    return types.float32(a), codegen


@intrinsic
def above(typingctx, a, b):
    """1.0 in the lanes where ``a > b``, 0.0 elsewhere."""
    if a != f32x16 or b != f32x16:
        return None

    def codegen(context, builder, sig, args):
        return builder.uitofp(builder.fcmp_ordered(">", args[0], args[1]), _VEC)

    return f32x16(a, b), codegen


def _avx512() -> bool:
    """Whether numba compiles for a CPU with AVX-512F (numba's ``CPU_NAME``/``CPU_FEATURES``
    settings first: a named target without a feature list stays portable)."""
    from numba.core import config

    if config.CPU_FEATURES:
        return "+avx512f" in config.CPU_FEATURES.split(",")
    if config.CPU_NAME:
        return False
    import llvmlite.binding as ll

    return bool(ll.get_host_cpu_features().get("avx512f", False))


_SCALEF = "llvm.x86.avx512.mask.scalef.ps.512"


@intrinsic
def exp(typingctx, x):
    """:func:`rlrec._fastmath.exp32` of every lane: the same reduction and polynomial, at most 1 ulp
    apart. With AVX-512, ``n`` is rounded in float (``llvm.rint``, ties to even) and ``2^n``
    applied by ``vscalefps``: three operations fewer than the integer conversions and exponent bits."""
    if x != f32x16:
        return None

    def codegen(context, builder, sig, args):
        b = builder
        wide = _avx512()

        def fma(p, y, c):
            return b.fadd(b.fmul(p, y, flags=_CONTRACT), c, flags=_CONTRACT)

        lo, hi = _constant(EXP_CLAMP[0]), _constant(EXP_CLAMP[1])
        v = args[0]
        v = b.select(b.fcmp_ordered(">", v, lo), v, lo)
        v = b.select(b.fcmp_ordered("<", v, hi), v, hi)
        if wide:
            rint = cgutils.get_or_insert_function(
                b.module, ir.FunctionType(_VEC, [_VEC]), "llvm.rint.v16f32"
            )
            z = b.call(rint, [b.fmul(v, _constant(1.44269504), flags=_CONTRACT)])
        else:
            shifted = fma(v, _constant(1.44269504), _constant(128.5))
            n = b.sub(b.fptosi(shifted, _IVEC), ir.Constant(_IVEC, [128] * WIDTH))
            z = b.sitofp(n, _VEC)
        y = b.fsub(v, b.fmul(z, _constant(LN2_PARTS[0]), flags=_CONTRACT), flags=_CONTRACT)
        y = b.fsub(y, b.fmul(z, _constant(LN2_PARTS[1]), flags=_CONTRACT), flags=_CONTRACT)
        p = _constant(EXP_POLY[0])
        for c in EXP_POLY[1:]:
            p = fma(p, y, _constant(c))
        p = b.fmul(b.fmul(p, y, flags=_CONTRACT), y, flags=_CONTRACT)
        p = b.fadd(b.fadd(p, y, flags=_CONTRACT), _constant(1.0), flags=_CONTRACT)
        if wide:
            i16, i32 = ir.IntType(16), ir.IntType(32)
            scalef = cgutils.get_or_insert_function(
                b.module, ir.FunctionType(_VEC, [_VEC, _VEC, _VEC, i16, i32]), _SCALEF
            )
            every_lane, current_rounding = ir.Constant(i16, -1), ir.Constant(i32, 4)
            return b.call(scalef, [p, z, _constant(0.0), every_lane, current_rounding])
        bits = b.shl(b.add(n, ir.Constant(_IVEC, [127] * WIDTH)), ir.Constant(_IVEC, [23] * WIDTH))
        return b.fmul(p, b.bitcast(bits, _VEC), flags=_CONTRACT)

    return f32x16(x), codegen

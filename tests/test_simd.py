"""rlrec._simd: explicit 16-lane vectors for the numba kernels, against numpy lane by lane."""

from __future__ import annotations

import numpy as np
import pytest

from rlrec.numba_support import available

pytestmark = pytest.mark.skipif(not available(), reason="numba not installed")


@pytest.mark.parametrize("avx512", [False, True])
def test_vector_exp_matches_the_scalar_kernel_exp_and_numpy(
    avx512: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of applying ``2^n``: exponent bits (any CPU) and ``vscalefps`` (AVX-512)."""
    import numba as nb

    from rlrec import _simd
    from rlrec._fastmath import exp32

    if avx512 and not _simd._avx512():
        pytest.skip("this CPU has no AVX-512")
    monkeypatch.setattr(_simd, "_avx512", lambda: avx512)

    @nb.njit(fastmath=True)  # as the kernels are compiled: no rewrite may undo the reduction
    def vector(x: np.ndarray, out: np.ndarray) -> None:
        for i in range(0, x.size, _simd.WIDTH):
            _simd.store(out, i, _simd.exp(_simd.load(x, i)))

    @nb.njit
    def scalar(x: np.ndarray, out: np.ndarray) -> None:
        for i in range(x.size):
            out[i] = exp32(x[i])

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-87.0, 80.0, 1 << 16), np.linspace(-1e-3, 1e-3, 1024)])
    x = np.concatenate([x, [-200.0, -87.5, 0.0, 80.0] * 4]).astype(np.float32)
    got, ref = np.empty_like(x), np.empty_like(x)
    vector(x, got)
    scalar(x, ref)
    ulps = np.abs(got.view(np.int32).astype(np.int64) - ref.view(np.int32))
    assert ulps.max() <= 1
    assert ("vscalefps" in "".join(vector.inspect_asm().values())) == avx512
    want = np.exp(np.maximum(x.astype(np.float64), -87.0))
    assert np.max(np.abs(got / want - 1.0)) < 2e-7  # float32 ulp is 6e-8 to 1.2e-7


def test_vector_arithmetic_loads_and_stores_along_the_last_axis() -> None:
    import numba as nb

    from rlrec import _simd

    @nb.njit
    def kernel(a: np.ndarray, b: np.ndarray, out: np.ndarray, k: np.float32) -> None:
        for r in range(a.shape[0]):
            for t0 in range(0, a.shape[1], _simd.WIDTH):
                x = _simd.load(a, (r, t0))
                y = _simd.load(b, t0)
                z = (x * y + k) - _simd.splat(2) * x - 0.5
                z = z + _simd.vmax(x, y) * _simd.above(x, y)
                z = z + _simd.select(x - y, x / y, 3.0)
                _simd.store(out, (r, t0), z)

    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    out = np.zeros_like(a)
    kernel(a, b, out, np.float32(0.25))
    want = a * b + 0.25 - 2 * a - 0.5 + np.where(a > b, np.maximum(a, b), 0.0)
    want += np.where(a > b, a / b, 3.0)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


def test_hmax_and_hsum_combine_every_lane() -> None:
    import numba as nb

    from rlrec import _simd

    @nb.njit
    def kernel(a: np.ndarray, out: np.ndarray) -> None:
        for r in range(a.shape[0]):
            out[r, 0] = _simd.hmax(_simd.load(a, (r, 0)))
            out[r, 1] = _simd.hsum(_simd.load(a, (r, 0)))

    rng = np.random.default_rng(2)
    a = rng.standard_normal((40, 16)).astype(np.float32)
    a[np.arange(16), np.arange(16)] = 5.0 + np.arange(16)  # the top in every lane once
    out = np.zeros((40, 2), np.float32)
    kernel(a, out)
    np.testing.assert_array_equal(out[:, 0], a.max(1))
    np.testing.assert_allclose(out[:, 1], a.astype(np.float64).sum(1), rtol=1e-5, atol=1e-5)

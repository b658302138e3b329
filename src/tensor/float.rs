//! The compute element types (f32, f64) and the dispatch from a runtime dtype to them.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use super::dtype::Element;

/// A floating-point type CPU kernels compute in: f32 in production, f64 for references.
pub trait Float:
    Element
    + Debug
    + PartialOrd
    + Default
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The most negative finite value (used as "minus infinity" in masks).
    const MIN: Self;
    /// Converts from f64.
    fn of(v: f64) -> Self;
    /// e^self.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The error function.
    fn erf(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The larger of two values.
    fn max(self, other: Self) -> Self;
    /// True unless NaN or infinite.
    fn is_finite(self) -> bool;
    /// `self` raised to an integer power.
    fn powi(self, n: i32) -> Self;
}

/// The methods whose implementation is the same for f32 and f64 (std's inherent ones).
macro_rules! common_float_methods {
    ($t:ty) => {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        const MIN: Self = <$t>::MIN;
        #[inline(always)]
        fn of(v: f64) -> Self {
            v as $t
        }
        #[inline(always)]
        fn ln(self) -> Self {
            <$t>::ln(self)
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            <$t>::sqrt(self)
        }
        #[inline(always)]
        fn abs(self) -> Self {
            <$t>::abs(self)
        }
        #[inline(always)]
        fn max(self, other: Self) -> Self {
            if self > other {
                self
            } else {
                other
            }
        }
        #[inline(always)]
        fn is_finite(self) -> bool {
            <$t>::is_finite(self)
        }
        #[inline(always)]
        fn powi(self, n: i32) -> Self {
            <$t>::powi(self, n)
        }
    };
}

/// f32: exp, tanh and erf are branch-free approximations (≤ 5e-7 error) that vectorise.
impl Float for f32 {
    common_float_methods!(f32);
    #[inline(always)]
    fn exp(self) -> Self {
        fast_exp_f32(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        // tanh(x) = 1 - 2 / (e^{2x} + 1), with x clamped where tanh is ±1 in f32.
        let e = fast_exp_f32(2.0 * self.clamp(-10.0, 10.0));
        1.0 - 2.0 / (e + 1.0)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        fast_erf_f32(self)
    }
}

/// f64: exact library functions, for high-precision references.
impl Float for f64 {
    common_float_methods!(f64);
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
}

/// e^x for f32 without a libm call, so loops over it vectorise.
///
/// Range reduction x = n·ln2 + r with |r| ≤ ln2/2, then a degree-7 Taylor polynomial for
/// e^r (relative error below 2e-7 on the reduced range) and 2^n built from the exponent
/// bits. Inputs below -87 flush to 0, above 88 saturate to f32::MAX.
#[inline(always)]
pub fn fast_exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    // Two-constant Cody–Waite split of ln 2 keeps r accurate.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    // SAFETY: n is a rounded value of a clamped input, so it lies in [-126, 127].
    let bits = ((unsafe { n.to_int_unchecked::<i32>() } + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// erf(x) for f32 without a libm call, so loops over it vectorise.
///
/// Uses the Chebyshev-fitted erfc formula of Press et al. (Numerical Recipes, `erfcc`),
/// fractional error below 1.2e-7: erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2), z = |x|.
#[inline(always)]
pub fn fast_erf_f32(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * fast_exp_f32(-z * z + poly);
    let erf_abs = 1.0 - erfc;
    if x < 0.0 {
        -erf_abs
    } else {
        erf_abs
    }
}

/// Runs `$body` with `$T` bound to the compute type of `$dtype` (f32 or f64); other dtypes
/// give [`crate::Error::UnsupportedDType`] naming `$op`.
macro_rules! with_float {
    ($dtype:expr, $op:expr, $T:ident => $body:block) => {
        match $dtype {
            $crate::tensor::DType::F32 => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $crate::tensor::DType::F64 => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
            other => Err($crate::error::Error::UnsupportedDType {
                op: ($op).to_string(),
                dtype: other,
            }),
        }
    };
}
pub(crate) use with_float;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_std() {
        let mut worst = 0.0f64;
        for i in -8000..8000 {
            let x = i as f32 * 0.01;
            let got = fast_exp_f32(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
    }

    #[test]
    fn fast_erf_matches_libm() {
        let mut worst = 0.0f64;
        for i in -6000..6000 {
            let x = i as f32 * 0.001;
            let got = fast_erf_f32(x) as f64;
            let want = libm::erf(x as f64);
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 5e-7, "worst absolute error {worst}");
    }

    #[test]
    fn tanh_matches_std() {
        for i in -2000..2000 {
            let x = i as f32 * 0.01;
            let got = Float::tanh(x);
            assert!((got - x.tanh()).abs() < 1e-6, "tanh({x}) = {got}");
        }
    }
}

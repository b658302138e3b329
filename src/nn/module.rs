//! The trait every layer implements to expose its parameters by name.

use super::param::Param;
use super::precision::Precision;
use crate::device::Device;
use crate::error::Result;
use crate::tensor::DType;

/// A layer or model that owns named parameters.
///
/// Forward and backward are layer-specific (their inputs differ), so they are inherent
/// methods; this trait covers what optimizers, checkpoints and gradient checks need.
pub trait Module {
    /// Calls `f` on every parameter, in a stable order.
    fn visit_params(&self, f: &mut dyn FnMut(&Param));

    /// Calls `f` on every parameter mutably, in the same order as [`Module::visit_params`].
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param));

    /// Zeroes every gradient.
    fn zero_grad(&mut self) -> Result<()> {
        self.for_each_param(&mut |p| p.zero_grad())
    }

    /// Moves every parameter (value and gradient) to `device`.
    fn to_device(&mut self, device: Device) -> Result<()> {
        self.for_each_param(&mut |p| p.to_device(device))
    }

    /// Calls a fallible `f` on every parameter, stopping at the first error.
    fn for_each_param(&mut self, f: &mut dyn FnMut(&mut Param) -> Result<()>) -> Result<()> {
        let mut result = Ok(());
        self.visit_params_mut(&mut |p| {
            if result.is_ok() {
                result = f(p);
            }
        });
        result
    }

    /// Sets the precision of every parameter's products on a GPU device (see
    /// [`Precision`]; honoured by [`super::Linear`] weights).
    fn set_precision(&mut self, precision: Precision) {
        self.visit_params_mut(&mut |p| p.precision = precision);
    }

    /// Converts every parameter (value and gradient) to `dtype`.
    fn to_dtype(&mut self, dtype: DType) {
        self.visit_params_mut(&mut |p| p.to_dtype(dtype));
    }

    /// Total number of parameter elements.
    fn num_params(&self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |p| n += p.value.numel());
        n
    }

    /// The parameter names, in visiting order.
    fn param_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit_params(&mut |p| names.push(p.name.clone()));
        names
    }
}

//! The pipeline's per-row hot paths in Rust, each a fast path beside a Python one that stays
//! the reference: what a fast path is not sure of, it leaves to Python.
//!
//! - `ValidRows` (rules.rs): the validator's rules for rows that keep them, from a row's cells
//!   to its sales.validated record.
//! - `SalesCopy` (copy.rs): the loader's sales.validated records as COPY's binary rows.

use pyo3::prelude::*;

mod copy;
mod dates;
mod rules;

#[pymodule]
fn sales_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<rules::ValidRows>()?;
    module.add_class::<copy::SalesCopy>()?;
    Ok(())
}

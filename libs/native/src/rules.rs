//! The validator's rules for the rows that keep them: from a row's cells straight to
//! its `sales.validated` record (key and JSON value), byte for byte what the Python path
//! (validator.rules) writes.
//!
//! It is a fast path, not a second home of the rules: a row it is not sure of (a rule
//! broken, non-ASCII text, a sign, more than two decimals, a date not written YYYY-MM-DD,
//! text that JSON would escape) is left to the Python rules, which decide and explain. So
//! this code only has to recognise a good row exactly; every rejection and its reasons stay
//! in Python. tests/validator/test_native.py compares both paths row by row.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use sha2::{Digest, Sha256};
use std::panic::{self, AssertUnwindSafe};

use crate::dates;

const HEX: &[u8; 16] = b"0123456789abcdef";
/// Digits a price may have here: Decimal's 28-digit context is exact far beyond this.
const MAX_PRICE_DIGITS: usize = 18;
/// An amount, in cents, that Decimal's 28-digit context computes exactly.
const MAX_EXACT_AMOUNT: i128 = 10i128.pow(26);

/// An exact fraction `num / den` (den > 0), a Decimal setting as Decimal.as_integer_ratio().
#[derive(Clone, Copy)]
struct Ratio {
    num: i128,
    den: i128,
}

/// The rules' settings and the keyed hash, made once per validator; `encode` runs per pack.
#[pyclass(frozen, module = "sales_native")]
pub struct ValidRows {
    prefix: String,
    price_min_exclusive: Ratio,
    price_max: Ratio,
    price_max_decimals: usize,
    quantity_min: i64,
    quantity_max: i64,
    // HMAC-SHA256 (RFC 2104) keyed once: each id hashes copies of these two states.
    inner: Sha256,
    outer: Sha256,
    pii_key_id: String,
    txn_prefix: Sha256,
    row_prefix: Sha256,
}

/// Where a pack's columns are (ABSENT when it has none): what encode reads of a row.
#[derive(Clone, Copy)]
struct Places {
    product: usize,
    price: usize,
    quantity: usize,
    date: usize,
    transaction: usize,
}

#[pymethods]
impl ValidRows {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        product_prefix: String,
        price_min_exclusive: (i64, i64),
        price_max: (i64, i64),
        price_max_decimals: usize,
        quantity_min: i64,
        quantity_max: i64,
        hmac_key: &[u8],
        pii_key_id: String,
    ) -> PyResult<Self> {
        let ratio = |(num, den): (i64, i64)| {
            if den <= 0 {
                return Err(PyValueError::new_err(
                    "a ratio's denominator must be positive",
                ));
            }
            Ok(Ratio {
                num: num.into(),
                den: den.into(),
            })
        };
        let mut block = [0u8; 64];
        if hmac_key.len() > block.len() {
            block[..32].copy_from_slice(&Sha256::digest(hmac_key));
        } else {
            block[..hmac_key.len()].copy_from_slice(hmac_key);
        }
        let keyed = |pad: u8| {
            let mut padded = block;
            padded.iter_mut().for_each(|byte| *byte ^= pad);
            let mut state = Sha256::new();
            state.update(padded);
            state
        };
        Ok(ValidRows {
            prefix: product_prefix,
            price_min_exclusive: ratio(price_min_exclusive)?,
            price_max: ratio(price_max)?,
            price_max_decimals,
            quantity_min,
            quantity_max,
            inner: keyed(0x36),
            outer: keyed(0x5c),
            pii_key_id,
            txn_prefix: Sha256::new_with_prefix(b"txn:"),
            row_prefix: Sha256::new_with_prefix(b"row:"),
        })
    }

    /// Each row of a pack as `(key, value)` of its sales.validated record, or None where the
    /// Python rules must decide. `places`: the columns' places (product, price, quantity,
    /// date, transaction_id); `odd_rows`: the rows whose field count is not the header's
    /// (`field_counts`); `customer_ids`: each row's id in clear (None: none); `validated_at`:
    /// the JSON of the batch's time.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (rows, places, upload_id, first_row, odd_rows, customer_ids, validated_at))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        rows: &Bound<'py, PyList>,
        places: (usize, usize, usize, usize, usize),
        upload_id: &str,
        first_row: u64,
        odd_rows: &Bound<'py, PyDict>,
        customer_ids: Option<&Bound<'py, PyList>>,
        validated_at: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let places = Places {
            product: places.0,
            price: places.1,
            quantity: places.2,
            date: places.3,
            transaction: places.4,
        };
        if !json_safe(upload_id) || !json_safe(&self.pii_key_id) {
            return PyList::new(py, rows.iter().map(|_| py.None()));
        }
        let out = PyList::empty(py);
        let mut value = Vec::with_capacity(512);
        for (index, row) in rows.iter().enumerate() {
            let mut outcome = py.None();
            if odd_rows.is_empty() || !odd_rows.contains(index)? {
                let customer_id = match customer_ids {
                    Some(ids) => Some(ids.get_item(index)?),
                    None => None,
                };
                // Past u64 the Python rules take the row (and COPY refuses it past int4).
                let Some(row_number) = first_row.checked_add(index as u64) else {
                    out.append(outcome)?;
                    continue;
                };
                value.clear();
                let Ok(cells) = row.downcast::<PyList>() else {
                    out.append(outcome)?;
                    continue;
                };
                // A panic here would fail the whole Kafka batch: the row is Python's instead.
                let encoded = panic::catch_unwind(AssertUnwindSafe(|| {
                    self.encode_row(
                        cells,
                        places,
                        upload_id,
                        row_number,
                        customer_id.as_ref(),
                        validated_at,
                        &mut value,
                    )
                }))
                .unwrap_or(Ok(None));
                if let Some(key) = encoded? {
                    outcome = PyTuple::new(
                        py,
                        [
                            PyBytes::new(py, &key).into_any(),
                            PyBytes::new(py, &value).into_any(),
                        ],
                    )?
                    .into_any()
                    .unbind();
                }
            }
            out.append(outcome)?;
        }
        Ok(out)
    }
}

impl ValidRows {
    /// The row's event id (its key) with its JSON written to `out`, or None: not sure.
    #[allow(clippy::too_many_arguments)]
    fn encode_row(
        &self,
        cells: &Bound<'_, PyList>,
        places: Places,
        upload_id: &str,
        row_number: u64,
        customer_id: Option<&Bound<'_, PyAny>>,
        validated_at: &str,
        out: &mut Vec<u8>,
    ) -> PyResult<Option<[u8; 32]>> {
        let cell = |place: usize| -> PyResult<Option<Bound<'_, PyAny>>> {
            Ok(if place < cells.len() {
                Some(cells.get_item(place)?)
            } else {
                None
            })
        };
        let (product, price, quantity, date, transaction) = (
            cell(places.product)?,
            cell(places.price)?,
            cell(places.quantity)?,
            cell(places.date)?,
            cell(places.transaction)?,
        );
        let Some(product) = text(product.as_ref()).map(strip) else {
            return Ok(None);
        };
        if product.is_empty() || !product.starts_with(&self.prefix) || !json_safe(product) {
            return Ok(None);
        }
        let Some(price) = text(price.as_ref()).map(strip).and_then(parse_price) else {
            return Ok(None);
        };
        if price.decimals > self.price_max_decimals
            || !above(price, self.price_min_exclusive)
            || above(price, self.price_max)
        {
            return Ok(None);
        }
        let Some(quantity) = text(quantity.as_ref()).map(strip).and_then(parse_quantity) else {
            return Ok(None);
        };
        if quantity < self.quantity_min || quantity > self.quantity_max {
            return Ok(None);
        }
        let date = match text(date.as_ref()).map(strip) {
            None => return Ok(None),
            Some("") => None,
            Some(text) if dates::days_since_2000(text).is_some() => Some(text),
            Some(_) => return Ok(None),
        };
        let Some(transaction) = text(transaction.as_ref()).map(strip) else {
            return Ok(None);
        };
        if !json_safe(transaction) {
            return Ok(None);
        }
        let customer = match customer_id.filter(|id| !id.is_none()) {
            None => "",
            Some(id) => match text(Some(id)) {
                Some(id) => strip(id),
                None => return Ok(None),
            },
        };

        // Decimal's 28-digit context multiplies exactly below this; past it Python rounds.
        let Some(amount) = price.cents().checked_mul(i128::from(quantity)) else {
            return Ok(None);
        };
        if amount >= MAX_EXACT_AMOUNT {
            return Ok(None);
        }

        let key = self.event_id(upload_id, row_number, transaction);
        out.extend_from_slice(b"{\"schema_version\":1,\"event_id\":\"");
        out.extend_from_slice(&key);
        out.extend_from_slice(b"\",\"upload_id\":\"");
        out.extend_from_slice(upload_id.as_bytes());
        out.extend_from_slice(b"\",\"row_number\":");
        out.extend_from_slice(row_number.to_string().as_bytes());
        out.extend_from_slice(b",\"transaction_id\":");
        json_str_or_null(out, transaction);
        out.extend_from_slice(b",\"product\":\"");
        out.extend_from_slice(product.as_bytes());
        out.extend_from_slice(b"\",\"price\":\"");
        write_cents(out, price.cents());
        out.extend_from_slice(b"\",\"quantity\":");
        out.extend_from_slice(quantity.to_string().as_bytes());
        out.extend_from_slice(b",\"amount\":\"");
        write_cents(out, amount);
        out.extend_from_slice(b"\",\"customer_hash\":");
        if customer.is_empty() {
            out.extend_from_slice(b"null,\"pii_key_id\":null");
        } else {
            out.push(b'"');
            out.extend_from_slice(&hex(&self.customer_hash(customer)));
            out.extend_from_slice(b"\",\"pii_key_id\":\"");
            out.extend_from_slice(self.pii_key_id.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b",\"sale_date\":");
        json_str_or_null(out, date.unwrap_or(""));
        out.extend_from_slice(b",\"validated_at\":");
        out.extend_from_slice(validated_at.as_bytes());
        out.push(b'}');
        Ok(Some(key))
    }

    /// sales_common.events.event_id_for: sha256("txn:<id>") or sha256("row:<upload>:<n>"),
    /// its first 32 hex digits.
    fn event_id(&self, upload_id: &str, row_number: u64, transaction: &str) -> [u8; 32] {
        let digest = if transaction.is_empty() {
            let mut state = self.row_prefix.clone();
            state.update(upload_id.as_bytes());
            state.update(b":");
            state.update(row_number.to_string().as_bytes());
            state.finalize()
        } else {
            let mut state = self.txn_prefix.clone();
            state.update(transaction.as_bytes());
            state.finalize()
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(&hex(&digest[..16])[..32]);
        key
    }

    /// sales_common.pii.CustomerHasher.hash: HMAC-SHA256 of the id.
    fn customer_hash(&self, customer_id: &str) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(customer_id.as_bytes());
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

/// A price as written: `digits` (every digit, the point dropped) over 10^`decimals`.
#[derive(Clone, Copy)]
struct Price {
    digits: i128,
    decimals: usize,
}

impl Price {
    /// In cents: exact, as encode only takes prices of at most two decimals.
    fn cents(self) -> i128 {
        self.digits * 10i128.pow(2 - self.decimals as u32)
    }
}

/// `\d+(\.\d*)?|\.\d+` in ASCII digits (the Python rules take a sign and other digits too).
fn parse_price(text: &str) -> Option<Price> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let count = whole.len() + fraction.len();
    if count == 0 || count > MAX_PRICE_DIGITS || fraction.len() > 2 {
        return None;
    }
    let mut digits: i128 = 0;
    for byte in whole.bytes().chain(fraction.bytes()) {
        if !byte.is_ascii_digit() {
            return None;
        }
        digits = digits * 10 + i128::from(byte - b'0');
    }
    Some(Price {
        digits,
        decimals: fraction.len(),
    })
}

/// `\d+` in ASCII digits, small enough for i64.
fn parse_quantity(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// price > limit, exactly: digits / 10^decimals > num / den.
fn above(price: Price, limit: Ratio) -> bool {
    price.digits * limit.den > limit.num * 10i128.pow(price.decimals as u32)
}

/// Cents as Decimal.quantize(Decimal("0.01")) prints them: "12.30", "0.05".
fn write_cents(out: &mut Vec<u8>, cents: i128) {
    out.extend_from_slice((cents / 100).to_string().as_bytes());
    let rest = (cents % 100) as u8;
    out.extend_from_slice(&[b'.', b'0' + rest / 10, b'0' + rest % 10]);
}

fn json_str_or_null(out: &mut Vec<u8>, text: &str) {
    if text.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// A cell's text ("" when the row is too short), None unless it is an all-ASCII str:
/// Unicode whitespace and digits are the Python rules' part.
fn text<'a>(cell: Option<&'a Bound<'_, PyAny>>) -> Option<&'a str> {
    let Some(cell) = cell else { return Some("") };
    let text = cell.downcast::<PyString>().ok()?.to_str().ok()?;
    text.is_ascii().then_some(text)
}

/// str.strip() of ASCII text: Python's whitespace includes \x1c-\x1f.
fn strip(text: &str) -> &str {
    text.trim_matches(|c: char| matches!(c, ' ' | '\t'..='\r' | '\x1c'..='\x1f'))
}

/// Printable ASCII without `"` and `\`: written into JSON as it is, as msgspec writes it.
fn json_safe(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

fn hex(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
        .collect()
}

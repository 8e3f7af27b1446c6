//! The loader's sales for `COPY ... (FORMAT binary)`, straight from `sales.validated` records.
//!
//! A fast path, as the validator's rules are: it reads a record only in the form the
//! validator writes it (its keys in contract order, no whitespace, strings without escapes)
//! and only values the contract accepts (sales_common.codec.decode_validated); any other
//! record is left to the Python decoder, which accepts or refuses it and explains.
//! tests/loader/test_native_copy.py compares the rows with those the Python path copies.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};

use crate::dates::{days_since_2000, digits};

/// COPY's binary header: the signature, no flags, no header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A tuple of the loader's 12 staged columns (loader.repository._SALES_COLUMNS).
const COLUMNS: i16 = 12;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A batch's sales in COPY's binary form, a record at a time.
#[pyclass(module = "sales_native")]
pub struct SalesCopy {
    buffer: Vec<u8>,
    rows: usize,
    last: usize,              // where the last appended row starts
    cents: Vec<Option<i128>>, // each row's amount in cents (None: past i128), for `totals`
    hashes: String,           // the rows' customer hashes, for `customer_hashes`
    last_hash_len: usize,     // what the last appended row added to `hashes`
}

#[pymethods]
impl SalesCopy {
    #[new]
    fn new() -> Self {
        SalesCopy {
            buffer: HEADER.to_vec(),
            rows: 0,
            last: HEADER.len(),
            cents: Vec::new(),
            hashes: String::new(),
            last_hash_len: 0,
        }
    }

    /// Appends the record's row and gives its upload id; None, with nothing appended, when
    /// the Python decoder must read the record.
    fn append<'py>(&mut self, py: Python<'py>, value: &[u8]) -> Option<Bound<'py, PyString>> {
        let start = self.buffer.len();
        // A panic would fail the whole batch: the record is Python's instead.
        let buffer = &mut self.buffer;
        let sale = panic::catch_unwind(AssertUnwindSafe(|| {
            Sale::parse(value).and_then(|sale| {
                sale.write(buffer)?;
                Some((
                    sale.upload_id,
                    cents(sale.amount.as_bytes()),
                    sale.customer_hash,
                ))
            })
        }))
        .unwrap_or(None);
        match sale {
            Some((upload_id, cents, hash)) => {
                self.rows += 1;
                self.last = start;
                self.cents.push(cents);
                let hash = hash.unwrap_or_default();
                self.last_hash_len = hash.len();
                self.hashes.push_str(hash);
                Some(PyString::new(py, upload_id))
            }
            None => {
                self.buffer.truncate(start); // whatever a panic left half written
                self.last = start; // nothing to take back
                None
            }
        }
    }

    /// Takes back the row `append` added last (a record the lane skips after reading it).
    fn undo(&mut self) {
        if self.buffer.len() > self.last {
            self.buffer.truncate(self.last);
            self.rows -= 1;
            self.cents.pop();
            self.hashes.truncate(self.hashes.len() - self.last_hash_len);
        }
    }

    /// How many rows it holds.
    #[getter]
    fn rows(&self) -> usize {
        self.rows
    }

    /// What the rows add to the aggregates, for a merge that inserts every one of them:
    /// per product, per (day, product) and per upload the amount (rounded to cents as
    /// `sales.amount` stores it, then summed), the quantity and the count; None when a sum
    /// would not fit (the batch is then merged from the staging table, summed in SQL).
    fn totals(&self) -> Option<Totals> {
        panic::catch_unwind(AssertUnwindSafe(|| self.sums().and_then(columns)))
            .ok()
            .flatten()
    }

    /// The rows' customer hashes (64 hex digits each, rows without one left out) one after
    /// another in one string: one parameter for the merge's look-up in erased_customers, not
    /// an array of thousands of strings to build and encode.
    fn customer_hashes(&self) -> &str {
        &self.hashes
    }

    /// The whole COPY input: header, rows, trailer.
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new_with(py, self.buffer.len() + 2, |out| {
            out[..self.buffer.len()].copy_from_slice(&self.buffer);
            out[self.buffer.len()..].copy_from_slice(&(-1i16).to_be_bytes());
            Ok(())
        })
        .expect("filling a new bytes object cannot fail")
    }
}

impl SalesCopy {
    fn sums(&self) -> Option<BatchSums<'_>> {
        let mut sums = BatchSums::default();
        let mut rows = &self.buffer[HEADER.len()..];
        for amount in &self.cents {
            let row = Row::read(&mut rows)?;
            let (amount, quantity) = ((*amount)?, i64::from(row.int(6)?));
            let day = match row.fields[10] {
                Some(_) => row.int(10)?,
                None => i32::try_from(row.long(11)?.div_euclid(MICROS_PER_DAY)).ok()?,
            };
            let product = row.fields[4]?;
            let upload: [u8; 16] = row.fields[1]?.try_into().ok()?;
            sums.products
                .entry(product)
                .or_default()
                .add(amount, quantity)?;
            sums.days
                .entry((day, product))
                .or_default()
                .add(amount, quantity)?;
            sums.uploads
                .entry(upload)
                .or_default()
                .add(amount, quantity)?;
        }
        Some(sums)
    }
}

/// One row of the COPY buffer, its fields in _SALES_COLUMNS order (None: NULL).
struct Row<'a> {
    fields: [Option<&'a [u8]>; COLUMNS as usize],
}

impl<'a> Row<'a> {
    /// The row at the start of `rows`, which then starts after it.
    fn read(rows: &mut &'a [u8]) -> Option<Row<'a>> {
        let count = i16::from_be_bytes(take(rows, 2)?.try_into().ok()?);
        if count != COLUMNS {
            return None;
        }
        let mut fields = [None; COLUMNS as usize];
        for field in &mut fields {
            let length = i32::from_be_bytes(take(rows, 4)?.try_into().ok()?);
            *field = match usize::try_from(length) {
                Ok(length) => Some(take(rows, length)?),
                Err(_) => None, // -1: NULL
            };
        }
        Some(Row { fields })
    }

    fn int(&self, column: usize) -> Option<i32> {
        Some(i32::from_be_bytes(self.fields[column]?.try_into().ok()?))
    }

    fn long(&self, column: usize) -> Option<i64> {
        Some(i64::from_be_bytes(self.fields[column]?.try_into().ok()?))
    }
}

fn take<'a>(bytes: &mut &'a [u8], length: usize) -> Option<&'a [u8]> {
    let (head, tail) = (bytes.get(..length)?, bytes.get(length..)?);
    *bytes = tail;
    Some(head)
}

/// A plain decimal (see `plain_decimal`) in cents, rounded half away from zero as
/// numeric(14, 2) rounds it; None past i128.
fn cents(text: &[u8]) -> Option<i128> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(point) => (&text[..point], &text[point + 1..]),
        None => (text, &[][..]),
    };
    let digit = |at: usize| fraction.get(at).map_or(0, |&b| i128::from(b - b'0'));
    let mut value: i128 = 0;
    for &b in whole {
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    value = value
        .checked_mul(100)?
        .checked_add(digit(0) * 10 + digit(1))?;
    value.checked_add(i128::from(digit(2) >= 5))
}

#[derive(Default)]
struct Sums {
    cents: i128,
    quantity: i64,
    count: i64,
}

impl Sums {
    fn add(&mut self, cents: i128, quantity: i64) -> Option<()> {
        self.cents = self.cents.checked_add(cents)?;
        self.quantity = self.quantity.checked_add(quantity)?;
        self.count += 1;
        Some(())
    }
}

#[derive(Default)]
struct BatchSums<'a> {
    products: HashMap<&'a [u8], Sums>,
    days: HashMap<(i32, &'a [u8]), Sums>,
    uploads: HashMap<[u8; 16], Sums>,
}

/// Columns as the merge's unnest() takes them: amounts in cents, days since 2000-01-01, a
/// day's product as its place (from 1) in the products' column, upload ids as UUID text.
/// The per-day columns, one entry per (day, product) of the batch (about one a row), are
/// PostgreSQL array literals (`{1,2,3}`): asyncpg encodes a list of ints at ~0.45 us an
/// element, PostgreSQL reads the text at a fraction of that.
type ProductTotals = (Vec<String>, Vec<i64>, Vec<i64>, Vec<i64>);
type DayTotals = (String, String, String, String, String);
type UploadTotals = (Vec<String>, Vec<i64>, Vec<i64>);
type Totals = (ProductTotals, DayTotals, UploadTotals);

/// The sums as columns; None when one is past i64 (bigint).
fn columns(sums: BatchSums<'_>) -> Option<Totals> {
    let mut products: ProductTotals = Default::default();
    let mut places = HashMap::with_capacity(sums.products.len());
    for (product, s) in sums.products {
        products
            .0
            .push(String::from_utf8_lossy(product).into_owned()); // UTF-8 already
        products.1.push(i64::try_from(s.cents).ok()?);
        products.2.push(s.quantity);
        products.3.push(s.count);
        places.insert(product, i32::try_from(products.0.len()).ok()?);
    }
    let mut days: [String; 5] = Default::default();
    for ((day, product), s) in sums.days {
        let values = [
            i64::from(day),
            i64::from(places[product]),
            i64::try_from(s.cents).ok()?,
            s.quantity,
            s.count,
        ];
        for (column, value) in days.iter_mut().zip(values) {
            column.push(if column.is_empty() { '{' } else { ',' });
            column.push_str(&value.to_string());
        }
    }
    let [day, product, cents, quantity, count] = days.map(|mut column| {
        column.push_str(if column.is_empty() { "{}" } else { "}" });
        column
    });
    let days = (day, product, cents, quantity, count);
    let mut uploads: UploadTotals = Default::default();
    for (upload, s) in sums.uploads {
        uploads.0.push(uuid_text(&upload));
        uploads.1.push(i64::try_from(s.cents).ok()?);
        uploads.2.push(s.count);
    }
    Some((products, days, uploads))
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A sales.validated record's values, as the staged row takes them.
struct Sale<'a> {
    event_id: &'a str,
    upload_id: &'a str,
    upload_uuid: [u8; 16],
    row_number: i32,
    transaction_id: Option<&'a str>,
    product: &'a str,
    price: &'a str,
    quantity: i32,
    amount: &'a str,
    customer_hash: Option<&'a str>,
    pii_key_id: Option<&'a str>,
    sale_date: Option<i32>,
    validated_at: i64,
}

impl<'a> Sale<'a> {
    fn parse(value: &'a [u8]) -> Option<Sale<'a>> {
        let mut json = Json {
            bytes: value,
            at: 0,
        };
        json.literal(b"{\"schema_version\":1,\"event_id\":")?;
        let event_id = json.string()?;
        json.literal(b",\"upload_id\":")?;
        let upload_id = json.string()?;
        let upload_uuid = uuid_bytes(upload_id)?;
        json.literal(b",\"row_number\":")?;
        let row_number = json.positive_int()?;
        json.literal(b",\"transaction_id\":")?;
        let transaction_id = json.string_or_null()?;
        json.literal(b",\"product\":")?;
        let product = json.string()?;
        json.literal(b",\"price\":")?;
        let price = json.string().filter(|text| plain_decimal(text))?;
        json.literal(b",\"quantity\":")?;
        let quantity = json.positive_int()?;
        json.literal(b",\"amount\":")?;
        let amount = json.string().filter(|text| plain_decimal(text))?;
        json.literal(b",\"customer_hash\":")?;
        let customer_hash = json.string_or_null()?;
        if customer_hash.is_some_and(|hash| !hex_digest(hash)) {
            return None;
        }
        json.literal(b",\"pii_key_id\":")?;
        let pii_key_id = json.string_or_null()?;
        json.literal(b",\"sale_date\":")?;
        let sale_date = match json.string_or_null()? {
            None => None,
            // asyncpg writes date.max and date.min as infinity and -infinity: Python's.
            Some("9999-12-31" | "0001-01-01") => return None,
            Some(text) => Some(days_since_2000(text)?),
        };
        json.literal(b",\"validated_at\":")?;
        let validated_at = utc_micros_since_2000(json.string()?)?;
        json.literal(b"}")?;
        if json.at != value.len() {
            return None;
        }
        Some(Sale {
            event_id,
            upload_id,
            upload_uuid,
            row_number,
            transaction_id,
            product,
            price,
            quantity,
            amount,
            customer_hash,
            pii_key_id,
            sale_date,
            validated_at,
        })
    }

    /// The row in COPY's binary form: a field count, then each field's length and bytes
    /// (length -1: NULL); integers big-endian. Column order: loader.repository._SALES_COLUMNS.
    /// None (the row half written) for a decimal numeric cannot hold.
    fn write(&self, out: &mut Vec<u8>) -> Option<()> {
        out.extend_from_slice(&COLUMNS.to_be_bytes());
        field(out, Some(self.event_id.as_bytes()));
        field(out, Some(&self.upload_uuid));
        field(out, Some(&self.row_number.to_be_bytes()));
        field(out, self.transaction_id.map(str::as_bytes));
        field(out, Some(self.product.as_bytes()));
        numeric(out, self.price)?;
        field(out, Some(&self.quantity.to_be_bytes()));
        numeric(out, self.amount)?;
        field(out, self.customer_hash.map(str::as_bytes));
        field(out, self.pii_key_id.map(str::as_bytes));
        field(
            out,
            self.sale_date
                .map(i32::to_be_bytes)
                .as_ref()
                .map(|d| &d[..]),
        );
        field(out, Some(&self.validated_at.to_be_bytes()));
        Some(())
    }
}

/// A plain decimal (see `plain_decimal`) as PostgreSQL's binary numeric: digit count,
/// weight (of the first base-10000 digit), sign, display scale, then the base-10000 digits;
/// numeric_recv drops zero digits and rounds to the column's scale (numeric(12, 2) and
/// (14, 2)), as the cast from text does. None past numeric's weight (2^15 digits of 4).
fn numeric(out: &mut Vec<u8>, text: &str) -> Option<()> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole = whole.trim_start_matches('0').as_bytes();
    let fraction = fraction.trim_end_matches('0').as_bytes();
    let whole_groups = whole.len().div_ceil(4);
    let count = i16::try_from(whole_groups + fraction.len().div_ceil(4)).ok()?;
    let weight = i16::try_from(whole_groups).ok()? - 1;
    let scale = i16::try_from(fraction.len()).ok()?;
    out.extend_from_slice(&(8 + 2 * i32::from(count)).to_be_bytes());
    for value in [count, weight, 0, scale] {
        out.extend_from_slice(&value.to_be_bytes()); // sign 0: positive
    }
    // Base-10000 digits: the whole part's from the point leftwards (the first maybe short),
    // the fraction's from the point rightwards (the last padded with zeros).
    let first = whole.len() - (whole_groups.saturating_sub(1)) * 4;
    let groups = std::iter::once(&whole[..first])
        .filter(|group| !group.is_empty())
        .chain(whole[first..].chunks(4));
    for group in groups {
        out.extend_from_slice(&(base_digit(group, 0) as i16).to_be_bytes());
    }
    for group in fraction.chunks(4) {
        out.extend_from_slice(&(base_digit(group, 4 - group.len()) as i16).to_be_bytes());
    }
    Some(())
}

/// ASCII digits as a number, times 10 per `pad` (the zeros after a short fraction group).
fn base_digit(group: &[u8], pad: usize) -> u16 {
    let value = group
        .iter()
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    value * 10u16.pow(pad as u32)
}

fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(bytes) => {
            // A record is at most a few MB (Kafka's message size), far below i32::MAX.
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

/// A reader of the validator's compact JSON; every method gives None where the text is not
/// what it expects (the record is then the Python decoder's).
struct Json<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Json<'a> {
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        let end = self.at + expected.len();
        (self.bytes.get(self.at..end)? == expected).then(|| self.at = end)
    }

    /// A string without escapes or control characters, valid UTF-8.
    fn string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let start = self.at;
        let length = self.bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if self.bytes[start + length] != b'"' {
            return None;
        }
        self.at = start + length + 1;
        std::str::from_utf8(&self.bytes[start..start + length]).ok()
    }

    fn string_or_null(&mut self) -> Option<Option<&'a str>> {
        if self.literal(b"null").is_some() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// An integer 1..=i32::MAX written without sign, point or leading zero (COPY's int4).
    fn positive_int(&mut self) -> Option<i32> {
        let start = self.at;
        let length = self.bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if length == 0 || length > 10 || self.bytes[start] == b'0' {
            return None;
        }
        self.at = start + length;
        let number: i64 = std::str::from_utf8(&self.bytes[start..self.at])
            .ok()?
            .parse()
            .ok()?;
        i32::try_from(number).ok()
    }
}

/// sales_common.codec._plain_decimal: ASCII digits with at most one point, one digit at least.
fn plain_decimal(text: &str) -> bool {
    let mut points = 0;
    let mut digits = 0;
    for byte in text.bytes() {
        match byte {
            b'.' => points += 1,
            b'0'..=b'9' => digits += 1,
            _ => return false,
        }
    }
    points <= 1 && digits > 0
}

/// sales_common.codec._hex_digest: 64 lowercase hex digits.
fn hex_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A UUID written 8-4-4-4-12 in hex digits, as 16 bytes (other spellings: the Python path).
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&dash| bytes[dash] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    let mut hex = bytes.iter().filter(|&&b| b != b'-');
    for byte in &mut out {
        let high = (*hex.next()? as char).to_digit(16)?;
        let low = (*hex.next()? as char).to_digit(16)?;
        *byte = (high * 16 + low) as u8;
    }
    Some(out)
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z` (as msgspec writes a UTC time) in microseconds since
/// 2000-01-01 UTC, PostgreSQL's timestamptz; other forms (offsets, leap seconds): Python's.
fn utc_micros_since_2000(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[10] != b'T' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    // Years 1 and 9999 hold datetime.min and datetime.max, which asyncpg writes as
    // -infinity and infinity: Python's.
    if text.starts_with("0001-") || text.starts_with("9999-") {
        return None;
    }
    let days = i64::from(days_since_2000(&text[..10])?);
    let (hour, minute, second) = (
        digits(&bytes[11..13])?,
        digits(&bytes[14..16])?,
        digits(&bytes[17..19])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let rest = &bytes[19..];
    let micros = match rest {
        [b'Z'] => 0,
        [b'.', fraction @ .., b'Z'] if (1..=6).contains(&fraction.len()) => {
            i64::from(digits(fraction)?) * 10i64.pow(6 - fraction.len() as u32)
        }
        _ => return None,
    };
    let seconds = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some(days * MICROS_PER_DAY + seconds * 1_000_000 + micros)
}

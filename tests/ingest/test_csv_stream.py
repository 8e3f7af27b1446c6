import pytest
from ingest.csv_stream import (
    CsvProblem,
    CsvRecordStream,
    EncodingProblem,
    HeaderError,
    RecordTooLong,
    check_header,
)


def parse(data: bytes, chunk: int) -> list[list[str]]:
    stream = CsvRecordStream()
    rows: list[list[str]] = []
    for start in range(0, len(data), chunk):
        rows.extend(stream.feed(data[start : start + chunk]))
    rows.extend(stream.close())
    return rows


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 10_000])
def test_rows_are_the_same_whatever_the_chunking(chunk: int) -> None:
    data = (
        '\ufeffproduct,price,quantity\r\n"Halal, Dates",1.50,2\r\n'
        '"Halal ""Best"" Oil",2,3\n"Halal\nTwo lines",3,4\n\nHalal é,5,6'
    ).encode()
    assert parse(data, chunk) == [
        ["product", "price", "quantity"],
        ["Halal, Dates", "1.50", "2"],
        ['Halal "Best" Oil', "2", "3"],
        ["Halal\nTwo lines", "3", "4"],
        ["Halal é", "5", "6"],
    ]


def test_invalid_utf8_names_the_byte_offset() -> None:
    data = b"product,price,quantity\nHalal \xff,1,1\n"
    with pytest.raises(EncodingProblem) as excinfo:
        parse(data, 5)
    assert excinfo.value.offset == data.index(b"\xff")
    assert "offset 29" in str(excinfo.value)


def test_a_record_without_end_is_bounded() -> None:
    stream = CsvRecordStream(max_record_chars=100)
    with pytest.raises(RecordTooLong):
        stream.feed(b'product,price,quantity\n"never closed' + b"x" * 200)


def test_unterminated_quote_at_end_of_file() -> None:
    with pytest.raises(CsvProblem, match="unterminated"):
        parse(b'product,price,quantity\n"Halal,1,1\n', 1000)


def test_sha256_covers_every_byte() -> None:
    stream = CsvRecordStream()
    stream.feed(b"a,b\n")
    stream.feed(b"1,2")
    import hashlib

    assert stream.sha256.hexdigest() == hashlib.sha256(b"a,b\n1,2").hexdigest()


def test_header_names_missing_and_unknown_columns() -> None:
    with pytest.raises(HeaderError) as excinfo:
        check_header(["name", "price", "quantity"])
    assert excinfo.value.missing == ["product"]
    assert excinfo.value.unknown == ["name"]
    assert "product" in str(excinfo.value)
    assert "name" in str(excinfo.value)


def test_header_is_normalised_and_optional_columns_allowed() -> None:
    assert check_header(
        [" Product", "PRICE ", "quantity", "customer_id", "date", "transaction_id"]
    ) == [
        "product",
        "price",
        "quantity",
        "customer_id",
        "date",
        "transaction_id",
    ]


def test_duplicated_columns_are_refused() -> None:
    with pytest.raises(HeaderError, match="duplicated columns: price"):
        check_header(["product", "price", "price", "quantity"])


@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_cr_only_line_endings_and_cr_inside_quotes(chunk: int) -> None:
    data = b'product,price,quantity\r"Halal\rA",1,1\rHalal B,2,2'
    assert parse(data, chunk) == [
        ["product", "price", "quantity"],
        ["Halal\rA", "1", "1"],
        ["Halal B", "2", "2"],
    ]


def test_nul_byte_is_a_clear_problem() -> None:
    with pytest.raises(CsvProblem, match="NUL"):
        parse(b"product,price,quantity\nHalal\x00A,1,1\n", 1000)

"""Subscription deliveries are inflated with a bound: a gzip bomb fails its record, nothing more."""

from __future__ import annotations

import gzip
import zlib

import pytest
from tagwarden.events.audit import MAX_DELIVERY_BYTES, DeliveryTooLargeError, decompress_delivery


def test_gzip_and_zlib_deliveries_inflate_whole() -> None:
    payload = b'{"messageType": "DATA_MESSAGE"}' * 1000

    assert decompress_delivery(gzip.compress(payload)) == payload
    assert decompress_delivery(zlib.compress(payload)) == payload


def test_a_delivery_of_exactly_the_bound_is_read_and_one_byte_more_is_refused() -> None:
    assert len(decompress_delivery(gzip.compress(b"a" * MAX_DELIVERY_BYTES))) == MAX_DELIVERY_BYTES
    with pytest.raises(DeliveryTooLargeError):
        decompress_delivery(gzip.compress(b"a" * (MAX_DELIVERY_BYTES + 1)))


def test_a_cut_or_uncompressed_delivery_is_a_zlib_error() -> None:
    whole = gzip.compress(b"x" * 10_000)

    with pytest.raises(zlib.error):
        decompress_delivery(whole[: len(whole) // 2])
    with pytest.raises(zlib.error):
        decompress_delivery(b'{"messageType": "DATA_MESSAGE"}')

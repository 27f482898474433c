"""The whole bad-input survey through the CLI (minutes): every case clear, no payload ran."""

import pytest

from fuzz.survey import survey, table


@pytest.mark.slow
def test_every_bad_input_family_is_clear(tmp_path):
    results = survey(tmp_path)
    print(table(results))
    unclear = [f"{c.family} / {c.name}: {d}" for c, ok, d in results if not ok]
    assert not unclear, "\n".join(unclear)

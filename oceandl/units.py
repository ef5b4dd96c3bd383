"""Units of temperature fields: their spellings and how maps label them.

Light on purpose (no xarray, no torch): the interpolators test the units of their input with
:func:`_unit`, and the figures label their colour bars with :func:`unit_label`, from one list.
"""
from __future__ import annotations

import re

__all__ = ["unit_label"]

# spellings of the two temperature units of SST products (CF/UDUNITS names and common variants)
# (UDUNITS also spells kelvin degK, degreeK, degree_K, deg_K: such a file was refused as "other units")
#: spellings of a temperature's units (lower case, spaces as "_"), CF/udunits and what files say. A bare
#: "C" (udunits: coulomb) and "F" (farad) are Celsius and Fahrenheit here: oceandl reads temperatures
#: and their covariates, where a charge or a capacitance does not occur and "C" is how many SST files
#: say Celsius. A field in Fahrenheit ("degF") is filled in degF (the fill is linear); check_units_values
#: refuses one whose values look like kelvin.
_UNIT_ALIASES = {**dict.fromkeys(("degc", "deg_c", "degree_c", "degrees_c", "degree_celsius", "degrees_celsius",
                                  "celsius", "°c", "degreec", "degreesc", "c", "deg_celsius", "degs_c", "deg._c",
                                  "degc.", "℃", "°_c", "º_c", "ºc", "centigrade", "degree_centigrade",
                                  "degrees_centigrade", "celcius", "degree_celcius", "degrees_celcius",
                                  "deg_cel", "degcel"), "degC"),
                 **dict.fromkeys(("k", "kelvin", "kelvins", "degree_kelvin", "degrees_kelvin", "degk", "deg_k",
                                  "degree_k", "degrees_k", "degreek", "degreesk", "°k", "°_k", "ºk"), "K"),
                 **dict.fromkeys(("degf", "deg_f", "degree_f", "degrees_f", "degreef", "degreesf", "fahrenheit",
                                  "degree_fahrenheit", "degrees_fahrenheit", "°f", "°_f", "ºf", "℉", "f",
                                  "deg_fahrenheit"), "degF")}
#: how a map's colour bar says each unit :func:`_unit` knows
_LABELS = {"degC": "°C", "degF": "°F", "K": "K"}


def _unit(u) -> str | None:
    """``u`` (a units attribute) as one spelling: ``degC``, ``K`` or ``degF`` for the spellings of
    :data:`_UNIT_ALIASES` (``"degrees C"``, ``"deg. C"``, ``"degree_C"``: case, spaces and underscores
    aside), else the text as given (stripped); None for None."""
    if u is None:
        return None
    text = str(u).strip()
    return _UNIT_ALIASES.get(re.sub(r"[\s_]+", "_", text.lower()), text)


#: degC -> K
KELVIN = 273.15


def kelvin_offset(src, dst) -> float | None:
    """What to add to a value in units ``src`` to have it in units ``dst`` (any spellings) when one is
    degC and the other kelvin: ``+273.15`` or ``-273.15``; None for any other pair (the same units,
    units not said, or units no offset converts)."""
    return {("degC", "K"): KELVIN, ("K", "degC"): -KELVIN}.get((_unit(src), _unit(dst)))


def unit_label(u) -> str:
    """The label of a colour bar in units ``u``: ``°C``, ``°F`` or ``K`` for any spelling of them
    (``C``, ``degree_Celsius``, ``degF``, ``kelvin``), else ``u`` as given (``m``, ``1``)."""
    unit = _unit(u)
    return _LABELS.get(unit, "" if unit is None else unit)

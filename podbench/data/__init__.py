"""The ds005574 data layer (real dataset and stand-in alike) and the stand-in generator."""

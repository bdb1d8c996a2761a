"""The commands of `archcalc`, a module per kind of work; archcalc.cli imports one when its command runs."""

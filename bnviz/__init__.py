"""bnviz: visual debugger for BatchNorm activation distributions."""

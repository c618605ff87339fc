"""One module per emulated AWS service; handlers named after the operations they implement."""

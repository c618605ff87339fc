"""Small helpers the workshop notebooks import (``from helpers import workshop, data, checks, costs``)."""

"""Square: event notifications signed in `x-square-hmacsha256-signature`."""

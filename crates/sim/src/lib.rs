//! Meter-fleet simulator: virtual DL/T 645 meters on timed RS485 buses behind TCP gateways.

"""Analytics on top of detections, as pure code the stages wrap: tracking (`bytetrack`, `kalman`)."""

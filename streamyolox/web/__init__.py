"""The browser side of a run: the streams API (`api`, `control`) and the camera wall (`wall`, `tap`)."""

"""How runs execute: a job is plain data (:mod:`.job`), run by a local process pool or on Ray
(:mod:`.backends`), its outputs coming back by value; a grid of them with its manifest and progress
(:mod:`.grid`)."""

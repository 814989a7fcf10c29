"""Ray, the one cluster manager both engines run on: starting or joining it, shipping a job
file's classes to its workers, and a task's error as the error it raised (``ray_support``).

May import the top modules only; the engines import this, never the other way.
"""

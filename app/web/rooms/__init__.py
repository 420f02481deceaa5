"""Rooms: the students of a lecture follow the presenter's tour on their own screens, answer its questions and
suggest inputs (issue 27).

A presenter opens a room (POST /api/rooms: a join code and the presenter's key); students open /join/{code}.
Every person in a room holds one WebSocket (/api/rooms/{code}/live): the presenter's page sends its state there,
and the server passes it on to every student. A room's state lives in a Store: this process's memory (one
worker), or Redis (UNROLLED_REDIS_URL), whose pub/sub carries each frame to the students of every worker.
"""

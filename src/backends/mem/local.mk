# mem backend

# src/core
libhr_a_SOURCES += src/core/engine.c src/core/engine.h src/core/dirtyset.c src/core/dirtyset.h

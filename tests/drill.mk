# drill (filled in by the drill work)

import stasis.update

# The frame was at the deleted debug print (old line 6): it continues at the append (new line 6).
stasis.update.map_frame("__main__.normalize", 6, to_line=6)

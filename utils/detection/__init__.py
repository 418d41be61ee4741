"""Detection on continuous recordings: 1-D intervals, matching, suppression, merging windows
into one annotation stream per record, and the ANSI/AAMI EC57 beat-by-beat comparison."""

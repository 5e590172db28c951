
# just a comment


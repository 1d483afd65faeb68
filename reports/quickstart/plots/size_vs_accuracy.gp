# made by qlab; run `gnuplot size_vs_accuracy.gp` here to redraw
DATA = "size_vs_accuracy.dat"
set title "Model size against accuracy"
set xlabel "bytes"
set ylabel "accuracy %"
set terminal pngcairo size 900,540 noenhanced
set output "size_vs_accuracy.png"
set grid
set offsets graph 0.08, graph 0.08, graph 0.08, graph 0.08
plot DATA using 1:2 with points pt 7 ps 1.5 notitle, \
     DATA using 1:2:3 with labels offset 0,1 font ",8" notitle
set terminal svg size 900,540 dynamic noenhanced background rgb 'white'
set output "size_vs_accuracy.svg"
replot

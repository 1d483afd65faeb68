# made by qlab; run `gnuplot latency.gp` here to redraw
DATA = "latency.dat"
set title "Latency per batch of 64"
set xlabel "point.label"
set ylabel "ms"
set terminal pngcairo size 900,540 noenhanced
set output "latency.png"
set style fill solid 0.6 border -1
set boxwidth 0.6
set yrange [0:*]
set grid y
set xtics rotate by -20
set bmargin 6
plot DATA using 0:2:xtic(1) with boxes notitle, \
     DATA using 0:2:(sprintf("%.3g", $2)) with labels offset 0,0.8 notitle
set terminal svg size 900,540 dynamic noenhanced background rgb 'white'
set output "latency.svg"
replot

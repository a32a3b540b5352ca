(function(){
  var table=document.getElementById('leaderboard'); if(!table) return;
  var body=table.tBodies[0], heads=table.tHead.rows[0].cells;
  function key(td,type){var v=td.getAttribute('data-value');
    if(type==='num'){return (v===null||v==='')?null:parseFloat(v);} return (v===null?td.textContent:v).toLowerCase();}
  function sortBy(index,dir){
    var type=heads[index].getAttribute('data-type'), rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var ra=a.getAttribute('data-ranked')==='no', rb=b.getAttribute('data-ranked')==='no';
      if(ra!==rb) return ra?1:-1;  /* models listed apart stay below the ranked ones */
      var x=key(a.cells[index],type),y=key(b.cells[index],type);
      if(x===null&&y===null) return 0; if(x===null) return 1; if(y===null) return -1;
      var c=x<y?-1:(x>y?1:0); return dir==='asc'?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
    for(var i=0;i<heads.length;i++){heads[i].removeAttribute('aria-sort');}
    heads[index].setAttribute('aria-sort',dir==='asc'?'ascending':'descending');
    table.setAttribute('data-sorted-by',heads[index].getAttribute('data-key')+':'+dir);
  }
  for(var i=0;i<heads.length;i++){(function(i){heads[i].addEventListener('click',function(){
    var cur=heads[i].getAttribute('aria-sort'), type=heads[i].getAttribute('data-type'),
        better=heads[i].getAttribute('data-better');
    var first=(type==='num'&&better!=='lower')?'desc':'asc';
    if(heads[i].getAttribute('data-key')==='rank') first='asc';
    sortBy(i,cur?(cur==='ascending'?'desc':'asc'):first);});})(i);}
  var m=/sort=([^&:]+):(asc|desc)/.exec(decodeURIComponent(location.hash||''));
  var start=0, dir='asc';
  if(m){for(var j=0;j<heads.length;j++){if(heads[j].getAttribute('data-key')===m[1]){start=j;dir=m[2];}}}
  sortBy(start,dir);
  /* what the first screen shows, recorded for checks: header keys and model rows wholly inside the viewport */
  function inView(el){var r=el.getBoundingClientRect();
    return r.width>0&&r.left>=0&&r.top>=0&&r.right<=window.innerWidth&&r.bottom<=window.innerHeight;}
  var keys=[], models=[];
  for(var k=0;k<heads.length;k++){if(inView(heads[k])) keys.push(heads[k].getAttribute('data-key'));}
  for(var r=0;r<body.rows.length;r++){var row=body.rows[r];
    if(inView(row.cells[0])&&inView(row.cells[1])) models.push(row.getAttribute('data-model'));}
  table.setAttribute('data-first-screen-columns',keys.join(' '));
  table.setAttribute('data-first-screen-models',JSON.stringify(models));
  table.setAttribute('data-sortable','ready');
})();
